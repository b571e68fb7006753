//! Turning a guest run into messages and the runner's exit status.

use std::process::ExitCode;

use crate::guest::GuestOutput;
use crate::progress::{self, human, say};

/// Prints what went wrong (if anything) with the log paths, and returns the
/// exit status `cargo vm exec` ends with.
pub fn finish(out: &GuestOutput) -> ExitCode {
    match out.failure() {
        None => say(format_args!(
            "guest finished in {}: command exited with status {}",
            human(out.elapsed),
            out.status
        )),
        Some(failure) => {
            say(format_args!("FAILED: {failure}"));
            if out.kernel_problem.is_none() && !out.timed_out {
                // No report line to point at: show how the guest ended.
                say("last lines of the console log:");
                eprintln!("{}", progress::tail_of(&out.console_log, 15));
            }
            say(format_args!("console log: {}", out.console_log.display()));
            say(format_args!(
                "run directory (kept): {}",
                out.run_dir.display()
            ));
            say(format_args!("exit status {}", out.exit_code()));
        }
    }
    ExitCode::from(out.exit_code())
}
