//! `cargo vm`: build the guest kernel and module, boot guests, run tests.
//! Everything lives in the library; see `adapt_qemu_tests::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match adapt_qemu_tests::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vm: error: {err:#}");
            ExitCode::from(adapt_qemu_tests::exit_code::RUNNER_ERROR)
        }
    }
}
