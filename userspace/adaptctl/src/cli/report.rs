//! How errors reach the user: one line on stderr, and a JSON document on
//! stdout under `--json`.

use adapt_client::DeviceError;
use serde_json::json;
use std::process::ExitCode;

/// Prints `err` and returns the exit code for it.
pub(crate) fn error(err: &anyhow::Error, json: bool) -> ExitCode {
    let (kind, code) = match err.downcast_ref::<DeviceError>() {
        Some(device) => (device.kind().as_str(), device.kind().exit_code()),
        None => ("error", 1),
    };
    // The full chain on one line: "context: cause: cause".
    let message = format!("{err:#}");
    eprintln!("adaptctl: error: {message}");
    if json {
        let doc = json!({ "error": { "kind": kind, "exit_code": code, "message": message } });
        println!("{doc}");
    }
    ExitCode::from(code)
}
