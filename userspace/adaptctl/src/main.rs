//! `adaptctl`: the command-line side of adapt. See `adaptctl --help`.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
