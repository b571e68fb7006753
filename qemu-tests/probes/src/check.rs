//! A tiny expectation recorder: every check prints one line, and the program
//! exits non-zero if any failed.

use std::process::ExitCode;

/// Collects pass/fail results of named checks.
#[derive(Default)]
pub struct Checks {
    passed: usize,
    failed: usize,
}

impl Checks {
    /// Records `name` as passed when `got == want`.
    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, got: T, want: T) {
        if got == want {
            self.passed += 1;
            println!("ok    {name}");
        } else {
            self.failed += 1;
            println!("FAIL  {name}: got {got:?}, want {want:?}");
        }
    }

    /// Records `name` as passed when `cond` holds.
    pub fn that(&mut self, name: &str, cond: bool, detail: impl std::fmt::Display) {
        if cond {
            self.passed += 1;
            println!("ok    {name}");
        } else {
            self.failed += 1;
            println!("FAIL  {name}: {detail}");
        }
    }

    /// Prints the closing line and returns the exit code.
    pub fn finish(self) -> ExitCode {
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
