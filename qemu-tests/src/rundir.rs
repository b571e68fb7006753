//! Per-guest run directories under `<target>/vm-runs/`: the stage2 script,
//! the console log, QEMU's stderr. They are kept for inspection; only the
//! oldest beyond [`KEEP`] are removed when a new one is made.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// How many run directories are kept.
pub const KEEP: usize = 50;
const PREFIX: &str = "run-";

/// Creates a new, uniquely named run directory and prunes old ones.
pub fn create(runs: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    std::fs::create_dir_all(runs).with_context(|| format!("cannot create {}", runs.display()))?;
    prune(runs, KEEP.saturating_sub(1));
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Zero-padded time first: names sort by age.
        let dir = runs.join(format!(
            "{PREFIX}{millis:015}-{:07}-{n:06}",
            std::process::id()
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create run directory {}", dir.display()))
            }
        }
    }
}

/// Removes the oldest run directories so at most `keep` remain. Errors are
/// ignored: pruning is housekeeping (another runner may prune concurrently).
pub fn prune(runs: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for name in &names[..excess] {
        let _ = std::fs::remove_dir_all(runs.join(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_unique_dirs_and_keeps_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("not-a-run")).unwrap();
        let mut made = Vec::new();
        for _ in 0..5 {
            made.push(create(tmp.path()).unwrap());
        }
        let unique: std::collections::BTreeSet<_> = made.iter().collect();
        assert_eq!(unique.len(), 5);
        prune(tmp.path(), 2);
        assert!(!made[0].exists() && !made[2].exists());
        assert!(made[3].exists() && made[4].exists());
        assert!(tmp.path().join("not-a-run").exists());
    }
}
