//! A writer for the "newc" cpio format, the one the kernel unpacks as an
//! initramfs. Written here so device nodes need no root and the archive is
//! byte-for-byte reproducible (fixed inode numbers, uid/gid 0, mtime 0).

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Builds an archive in memory.
#[derive(Default)]
pub struct NewcWriter {
    out: Vec<u8>,
    next_ino: u32,
}

impl NewcWriter {
    pub fn new() -> NewcWriter {
        NewcWriter {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    /// A directory (`name` without a leading `/`).
    pub fn dir(&mut self, name: &str, perm: u32) -> &mut Self {
        self.entry(name, S_IFDIR | perm, 2, (0, 0), &[])
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(name, S_IFREG | perm, 1, (0, 0), data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> &mut Self {
        self.entry(name, S_IFCHR | perm, 1, (major, minor), &[])
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.out
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> &mut Self {
        let ino = self.next_ino;
        if ino != 0 {
            self.next_ino += 1;
        }
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1, // with the NUL
            0,                     // check (unused by newc)
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn header_layout() {
        let mut w = NewcWriter::new();
        w.file("a", 0o644, b"xyz");
        let bytes = w.finish();
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        let fields = [
            "00000001", "000081A4", "00000000", "00000000", "00000001", "00000000", "00000003",
        ];
        let rest = [
            "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
        ];
        let expected = format!("070701{}{}", fields.concat(), rest.concat());
        assert_eq!(header, expected);
        // 110-byte header + "a\0" = 112 (aligned), then 3 data bytes + 1 pad.
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..116], b"xyz\0");
        assert_eq!(bytes.len() % 4, 0);
    }

    /// The system's cpio reads what we write (skipped quietly when cpio is
    /// not installed; `cargo vm` installs it).
    #[test]
    fn cpio_tool_lists_our_archive() {
        let mut w = NewcWriter::new();
        w.dir("bin", 0o755)
            .file("bin/tool", 0o755, b"#!/bin/sh\n")
            .symlink("bin/sh", "tool")
            .dir("dev", 0o755)
            .char_dev("dev/console", 0o600, 5, 1);
        let archive = w.finish();
        let Ok(mut child) = Command::new("cpio")
            .args(["-itv", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        else {
            return;
        };
        child.stdin.take().unwrap().write_all(&archive).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 5, "{listing}");
        assert!(
            lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" bin"),
            "{listing}"
        );
        assert!(
            lines[1].starts_with("-rwxr-xr-x") && lines[1].ends_with(" bin/tool"),
            "{listing}"
        );
        assert!(
            lines[2].starts_with("lrwxrwxrwx") && lines[2].ends_with("bin/sh -> tool"),
            "{listing}"
        );
        assert!(
            lines[4].starts_with("crw-------") && lines[4].contains("5,"),
            "{listing}"
        );
    }
}
