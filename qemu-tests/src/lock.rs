//! Advisory file locks, so two runners never build into one cache entry.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};

/// Holds an exclusive `flock` until dropped (or the process dies).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock at `path` (created if needed). When another process
    /// holds it, says so once through `on_wait` and then blocks.
    pub fn acquire(path: &Path, on_wait: impl FnOnce()) -> Result<FileLock> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        if flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_err() {
            on_wait();
            flock(&file, libc::LOCK_EX)
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Ok(FileLock { _file: file })
    }
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: the descriptor is owned by `file`, which outlives the call;
        // flock has no memory-safety preconditions.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let first = FileLock::acquire(&path, || panic!("nobody holds it yet")).unwrap();
        let file = File::open(&path).unwrap();
        assert!(flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_err());
        drop(first);
        assert!(flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_ok());
    }
}
