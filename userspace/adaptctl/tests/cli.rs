//! adaptctl's error paths on the host, where the adapt module is never
//! loaded: each cause gets its own one-line message and exit code.

mod common;

use common::{adaptctl, command, is_root, stderr, NO_DEVICE};
use std::path::Path;
use std::process::Command;

#[test]
fn status_without_the_module_says_to_load_it() {
    assert!(
        !Path::new("/sys/module/adapt").exists(),
        "this test expects a host without the adapt module"
    );
    let out = adaptctl(&["--device", NO_DEVICE, "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("not loaded") && err.contains("insmod"),
        "{err}"
    );
}

#[test]
fn json_errors_are_machine_readable() {
    let out = adaptctl(&["--device", NO_DEVICE, "status", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["error"]["kind"], "module-not-loaded");
    assert_eq!(doc["error"]["exit_code"], 3);
    assert!(doc["error"]["message"].as_str().unwrap().contains("insmod"));
}

#[test]
fn a_device_that_is_not_adapt_is_named() {
    let out = adaptctl(&["--device", "/dev/null", "status"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("/dev/null is not an adapt device"));

    let file = tempfile::NamedTempFile::new().unwrap();
    let out = adaptctl(&["--device", file.path().to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
}

#[test]
fn the_device_path_comes_from_the_environment_too() {
    let out = command(&["status"])
        .env("ADAPT_DEVICE", "/dev/null")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
}

#[test]
fn permission_denied_says_to_run_as_root() {
    // A node the caller may not open. As root, drop to `nobody` with
    // setpriv (util-linux); otherwise a mode-000 file is enough.
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("adapt");
    std::fs::write(&node, b"").unwrap();
    let out = if is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o600)).unwrap();
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_adaptctl"))
            .args(["--device", node.to_str().unwrap(), "status"])
            .output()
            .expect("setpriv (util-linux) is needed to test as a non-root user")
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o000)).unwrap();
        adaptctl(&["--device", node.to_str().unwrap(), "status"])
    };
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("root"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    let out = adaptctl(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    let out = adaptctl(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Exit codes"), "{help}");
    assert!(help.contains("status"), "{help}");
}

#[test]
fn module_version_matches_the_workspace_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kmod/adapt_main.rs");
    let source = std::fs::read_to_string(&root).unwrap();
    let expected = format!(
        "const MODULE_VERSION: &str = \"{}\";",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        source.contains(&expected),
        "kmod/adapt_main.rs must declare {expected}"
    );
}
