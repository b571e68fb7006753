//! What adaptctl's host tests share: running the binary under test with a
//! clean environment, reading its output, and the optimization library
//! built once per test binary.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A device path that does not exist, so the module counts as not loaded.
pub const NO_DEVICE: &str = "/nonexistent/adapt";

/// The adaptctl under test with `args`, without the caller's
/// `ADAPT_DEVICE` and `ADAPT_LIBRARY`.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_adaptctl"));
    cmd.args(args)
        .env_remove("ADAPT_DEVICE")
        .env_remove("ADAPT_LIBRARY");
    cmd
}

/// Runs [`command`] and collects its output.
pub fn adaptctl(args: &[&str]) -> Output {
    command(args).output().expect("run adaptctl")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// stdout as a JSON document; panics with both streams when it is not.
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

/// The library, built once per test binary by the segment builder under
/// the target directory (a directory per test binary), with every segment
/// present.
pub fn library() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = adapt_library_build::builder::library_for_tests(concat!(
            "adaptctl-",
            env!("CARGO_CRATE_NAME")
        ));
        for name in [
            "adler32", "axpy_f32", "crc32", "crc32c", "dot_f32", "sha256",
        ] {
            assert!(
                dir.join(format!("{name}.seg")).is_file(),
                "{name} not built"
            );
        }
        dir
    })
}

/// [`library`] as a command-line argument.
pub fn dir() -> &'static str {
    library().to_str().unwrap()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
