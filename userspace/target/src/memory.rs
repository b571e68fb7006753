//! Reading a process's memory through `/proc/PID/mem` (never writing: adapt
//! changes a target's code only through the module).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Why the bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("no process with pid {pid}")]
    NoSuchProcess { pid: u32 },
    #[error(
        "not allowed to read the memory of pid {pid} (/proc/{pid}/mem): run as root, and the \
         target must be dumpable"
    )]
    NotPermitted { pid: u32 },
    #[error("address {addr:#x} ({len} bytes) is not mapped readable in pid {pid}")]
    Unmapped { pid: u32, addr: u64, len: usize },
    #[error("reading {len} bytes at {addr:#x} of pid {pid}: {source}")]
    Io {
        pid: u32,
        addr: u64,
        len: usize,
        #[source]
        source: io::Error,
    },
}

/// `len` bytes of process `pid` at `addr`, read through `/proc/PID/mem`.
pub fn read_memory(pid: u32, addr: u64, len: usize) -> Result<Vec<u8>, MemoryError> {
    let file = File::open(adapt_elf::proc_dir(pid).join("mem")).map_err(|err| {
        match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) => MemoryError::NoSuchProcess { pid },
            Some(libc::EACCES) | Some(libc::EPERM) => MemoryError::NotPermitted { pid },
            _ => MemoryError::Io {
                pid,
                addr,
                len,
                source: err,
            },
        }
    })?;
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], addr + done as u64) {
            // A read that stops early ran into an unmapped page.
            Ok(0) => return Err(MemoryError::Unmapped { pid, addr, len }),
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(match err.raw_os_error() {
                    Some(libc::EIO) | Some(libc::EFAULT) => {
                        MemoryError::Unmapped { pid, addr, len }
                    }
                    Some(libc::ESRCH) => MemoryError::NoSuchProcess { pid },
                    Some(libc::EACCES) | Some(libc::EPERM) => MemoryError::NotPermitted { pid },
                    _ => MemoryError::Io {
                        pid,
                        addr,
                        len,
                        source: err,
                    },
                })
            }
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_processs_own_memory() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let got = read_memory(std::process::id(), data.as_ptr() as u64 + 3, 9_000).unwrap();
        assert_eq!(got, data[3..9_003]);
    }

    #[test]
    fn unmapped_addresses_and_missing_processes_are_told_apart() {
        let err = read_memory(std::process::id(), 8, 4).unwrap_err();
        assert!(
            matches!(err, MemoryError::Unmapped { addr: 8, .. }),
            "{err}"
        );
        let err = read_memory(u32::MAX / 2, 0x1000, 4).unwrap_err();
        assert!(matches!(err, MemoryError::NoSuchProcess { .. }), "{err}");
    }
}
