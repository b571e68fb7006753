//! adapt.ko in a real guest: load/unload, `/dev/adapt`, `adaptctl status`,
//! who may open the device, and ioctl abuse.
//!
//! Every test boots a fresh guest with the debug kernel; the runner already
//! fails a run whose console shows a WARN, BUG, oops, lockdep or
//! sleeping-in-atomic report, so each test also proves "no warning".

mod common;

use adapt_qemu_tests::GuestOutput;
use common::{assert_clean, assert_no_leaks};

fn guest(script: &str) -> GuestOutput {
    common::run_sh(&common::guest(600), script)
}

#[test]
fn load_unload_50_times_without_leak_or_warning() {
    // kmemleak only reports objects older than 5 s that stayed unreferenced
    // over a scan: wait, then scan twice.
    let out = guest(
        r#"set -e
        echo clear > /sys/kernel/debug/kmemleak
        for i in $(seq 50); do
            rmmod adapt
            test ! -e /dev/adapt
            insmod "$ADAPT_KO"
            test -c /dev/adapt
        done
        adaptctl status >/dev/null
        rmmod adapt
        kmemleak_count
        grep -q '^adapt ' /proc/modules && exit 1
        echo done"#,
    );
    assert_clean(&out);
    assert_no_leaks(&out);
    assert!(out.stdout.contains("done"));
}

#[test]
fn device_node_is_root_only() {
    let out = guest("stat -c '%a %U %F' /dev/adapt");
    assert_clean(&out);
    assert_eq!(out.stdout.trim(), "600 root character special file");
}

#[test]
fn status_reports_versions_and_the_sampling_fallback() {
    let out = guest("adaptctl status && adaptctl status --json");
    assert_clean(&out);
    let abi_line = format!("ABI        v{}", adapt_abi::ADAPT_ABI_VERSION);
    assert!(out.stdout.contains(&abi_line), "{}", out.stdout);
    let json_start = out.stdout.find('{').expect("JSON document");
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout[json_start..]).expect("status --json is JSON");
    assert_eq!(doc["module_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["module_abi_version"], adapt_abi::ADAPT_ABI_VERSION);
    assert_eq!(doc["abi_match"], true);
    assert_eq!(doc["device"], "/dev/adapt");
    // TCG guests have no PMU (DESIGN §1): the module must fall back to the
    // software clock and say so.
    assert_eq!(doc["hardware_pmu_sampling"], false);
    assert_eq!(doc["sampling"], "software-cpu-clock");
    assert_eq!(doc["capabilities"], adapt_abi::ADAPT_CAP_SAMPLING_SW_CLOCK);
}

#[test]
fn status_errors_name_their_cause() {
    let out = guest(
        r#"
        setpriv --reuid=65534 --regid=65534 --clear-groups adaptctl status; echo "nonroot=$?"
        rm /dev/adapt
        adaptctl status; echo "nonode=$?"
        rmmod adapt
        adaptctl status; echo "unloaded=$?"
        adaptctl status --json; echo "unloaded-json=$?"
        "#,
    );
    assert_clean(&out);
    let s = &out.stdout;
    assert!(
        s.contains("nonroot=5") && s.contains("permission denied"),
        "{s}"
    );
    assert!(
        s.contains("nonode=4") && s.contains("mknod -m 600 /dev/adapt c 10 "),
        "{s}"
    );
    assert!(s.contains("unloaded=3") && s.contains("not loaded"), "{s}");
    assert!(s.contains(r#""kind":"module-not-loaded""#), "{s}");
}

#[test]
fn malformed_ioctls_get_the_promised_errno() {
    let out = guest("adapt-ioctl-abuse /dev/adapt");
    assert_clean(&out);
    assert!(out.stdout.contains(" 0 failed"), "{}", out.stdout);
}

#[test]
fn an_open_device_pins_the_module() {
    let out = guest(
        r#"
        exec 3<>/dev/adapt
        rmmod adapt 2>&1; echo "while-open=$?"
        exec 3<&-
        rmmod adapt; echo "after-close=$?"
        "#,
    );
    assert_clean(&out);
    assert!(out.stdout.contains("while-open=1"), "{}", out.stdout);
    assert!(out.stdout.contains("in use"), "{}", out.stdout);
    assert!(out.stdout.contains("after-close=0"), "{}", out.stdout);
}

#[test]
fn self_injection_round_trips_under_a_concurrent_caller_without_leaks() {
    // adapt-inject-smoke drives the raw ioctls (no adaptctl): it injects a
    // tiny variant over one of its own functions while a second thread keeps
    // calling it, checks W^X and the result, reverts, and repeats.
    let out = guest(
        r#"set -e
        echo clear > /sys/kernel/debug/kmemleak
        adapt-inject-smoke 200
        rmmod adapt
        kmemleak_count"#,
    );
    assert_clean(&out);
    assert!(out.stdout.contains(" 0 failed"), "{}", out.stdout);
    assert!(out.stdout.contains("rounds=200"), "{}", out.stdout);
    assert_no_leaks(&out);
}

#[test]
fn a_fault_inside_a_segment_quarantines_its_variant() {
    let out = guest("adapt-inject-smoke fault && adaptctl status && rmmod adapt");
    assert_clean(&out);
    assert!(
        out.stdout.contains("quarantine smoke/trap"),
        "status must say so: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("ok    the child died of SIGILL"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("ok    the variant is quarantined"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("ok    automatic injection of it is refused"),
        "{}",
        out.stdout
    );
}
