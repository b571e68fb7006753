//! Guest runner tests: they boot real guests from what `cargo vm build`
//! made (run them with `cargo vm test`; a plain `cargo test` without a built
//! kernel fails with "run `cargo vm build` first"). These check the runner
//! itself, so most skip loading adapt.ko.

mod common;

use std::time::Duration;

use adapt_qemu_tests::exit_code;
use adapt_qemu_tests::{Artifacts, Guest};

fn guest() -> Guest {
    common::guest(300)
}

#[test]
fn exit_status_and_output_come_through() {
    let out = guest()
        .without_module()
        .run(&[
            "sh",
            "-c",
            "echo 'hello from the guest'; echo 'on stderr' >&2; printf 'no newline'; exit 7",
        ])
        .unwrap();
    assert_eq!(out.status, 7, "{}", out.report());
    assert!(
        out.exit_reported && !out.timed_out && out.kernel_problem.is_none(),
        "{}",
        out.report()
    );
    assert_eq!(out.stdout, "hello from the guest\non stderr\nno newline");
    assert_eq!(out.exit_code(), 7);
    assert!(out.console_log.is_file());
}

#[test]
fn deliberate_kernel_warning_fails_the_run() {
    let out = guest()
        .without_module()
        .run(&["sh", "-c", "insmod \"$ADAPT_WARN_KO\"; echo survived"])
        .unwrap();
    let problem = out
        .kernel_problem
        .as_deref()
        .unwrap_or_else(|| panic!("no kernel problem found\n{}", out.report()));
    assert!(
        problem.contains("adapt test: deliberate warning"),
        "{problem}"
    );
    assert!(problem.contains("WARNING:"), "{problem}");
    assert!(
        !out.stdout.contains("survived"),
        "panic_on_warn did not stop the guest\n{}",
        out.report()
    );
    assert!(!out.success());
    assert_eq!(out.exit_code(), exit_code::KERNEL_PROBLEM);
    assert!(out
        .report()
        .contains(&out.console_log.display().to_string()));
}

#[test]
fn hung_command_is_killed_at_the_timeout() {
    let out = guest()
        .without_module()
        // Long enough to boot and start the command on a busy host; the
        // guest is killed at the timeout whether or not it got that far.
        .timeout(Duration::from_secs(20))
        .run(&["sleep", "1000"])
        .unwrap();
    assert!(out.timed_out, "{}", out.report());
    assert!(!out.exit_reported);
    assert_eq!(out.exit_code(), exit_code::TIMEOUT);
    assert!(
        out.elapsed < Duration::from_secs(50),
        "killed only after {:?}",
        out.elapsed
    );
    assert!(out.failure().unwrap().contains("timeout"));
}

#[test]
fn guest_sees_the_host_read_only_with_private_tmp() {
    let script = r#"
        set -e
        test -f "$WS/Cargo.toml"
        ! touch /etc/adapt-vm-probe 2>/dev/null
        echo scratch > /tmp/probe && test "$(cat /tmp/probe)" = scratch
        echo kept > "$ADAPT_RUN_DIR/from-guest"
        test "$(id -u)" = 0
        grep -c ^processor /proc/cpuinfo
        test -e /sys/kernel/debug/kmemleak
    "#;
    let a = guest().artifacts().clone();
    let ws = a.workspace_root.to_string_lossy().into_owned();
    let out = guest()
        .without_module()
        .smp(2)
        .env("WS", &ws)
        .run(&["sh", "-c", script])
        .unwrap();
    assert!(out.success(), "{}", out.report());
    assert_eq!(out.stdout.trim(), "2", "both vCPUs should be online");
    let kept = std::fs::read_to_string(out.run_dir.join("from-guest")).unwrap();
    assert_eq!(kept, "kept\n");
}

#[test]
fn failed_insmod_stops_before_the_command() {
    // Any file that is not a module makes insmod fail.
    let mut a: Artifacts = guest().artifacts().clone();
    a.adapt_ko = a.workspace_root.join("Cargo.toml");
    let out = Guest::with_artifacts(a)
        .timeout(Duration::from_secs(300))
        .run(&["echo", "must not run"])
        .unwrap();
    let setup = out
        .setup_error
        .as_deref()
        .unwrap_or_else(|| panic!("no setup error\n{}", out.report()));
    assert!(
        setup.starts_with("insmod ") && setup.contains("Cargo.toml"),
        "{setup}"
    );
    assert!(!out.stdout.contains("must not run"));
    assert_eq!(out.exit_code(), exit_code::NO_EXIT_STATUS);
}

#[test]
fn adapt_ko_is_loaded_before_the_command() {
    let out = guest()
        .run(&[
            "sh",
            "-c",
            "grep -c '^adapt ' /proc/modules; test -n \"$ADAPT_KO\"",
        ])
        .unwrap();
    assert!(out.success(), "{}", out.report());
    assert_eq!(out.stdout.trim(), "1");
}
