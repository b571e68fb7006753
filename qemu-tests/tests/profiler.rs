//! The profiler in a real guest: known time splits come out ranked and in
//! proportion, threads started later are sampled, a target that exits ends
//! the profile cleanly, PIE executables and shared libraries are symbolized,
//! and bad targets are refused with their own errors.

mod common;

use adapt_qemu_tests::GuestOutput;
use common::{assert_clean, assert_no_leaks, document};
use serde_json::Value;

fn guest(script: &str) -> GuestOutput {
    common::run_sh(&common::guest(600), script)
}

fn share(profile: &Value, function: &str) -> f64 {
    profile["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == function)
        .map_or(0.0, |f| f["share"].as_f64().unwrap())
}

/// The functions the process ran in user mode, hottest first (the
/// profile's order without `[kernel]`, the time the kernel spent on the
/// process's behalf, which a TCG guest on a busy host inflates).
fn user_ranking(profile: &Value) -> Vec<&str> {
    profile["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .filter(|name| *name != "[kernel]")
        .collect()
}

#[test]
fn known_time_split_is_ranked_and_measured_within_10_points() {
    let out = guest(
        r#"set -e
        adapt-workload split --seconds 9 --threads 2 > /tmp/w.out &
        pid=$!
        sleep 1
        echo '--- BEGIN profile ---'
        adaptctl profile --pid $pid --duration 5s --json
        echo '--- END profile ---'
        wait $pid
        adaptctl profile --pid 1 --duration 100ms --top 3 >/dev/null"#,
    );
    assert_clean(&out);
    let p = document(&out, "profile");
    assert_eq!(
        p["event"], "cpu-clock",
        "no PMU under TCG: software fallback"
    );
    assert!(p["total_samples"].as_u64().unwrap() >= 500, "{p}");
    assert_eq!(p["dropped_samples"], 0);
    // The workload splits its user-mode time 70/20/10: shares of the
    // samples taken in user mode, and the ranking among user functions.
    let user = 1.0 - share(&p, "[kernel]");
    assert!(user > 0.5, "the workload ran mostly in user mode: {p}");
    let (hot, warm, cool) = (
        share(&p, "adapt_work_hot") / user,
        share(&p, "adapt_work_warm") / user,
        share(&p, "adapt_work_cool") / user,
    );
    assert_eq!(
        user_ranking(&p)[..3],
        ["adapt_work_hot", "adapt_work_warm", "adapt_work_cool"],
        "{p}"
    );
    assert!((hot - 0.70).abs() <= 0.10, "hot share of user time {hot}");
    assert!(
        (warm - 0.20).abs() <= 0.10,
        "warm share of user time {warm}"
    );
    assert!(
        (cool - 0.10).abs() <= 0.10,
        "cool share of user time {cool}"
    );
    // The PIE executable is named as the object.
    let top = &p["functions"][0];
    assert!(
        top["object"].as_str().unwrap().ends_with("/adapt-workload"),
        "{top}"
    );
}

#[test]
fn threads_started_after_profiling_began_are_sampled() {
    let out = guest(
        r#"set -e
        adapt-workload split --seconds 7 --threads 1 --late-threads 2 --late-after-ms 2500 > /tmp/w.out &
        pid=$!
        sleep 0.5
        echo '--- BEGIN profile ---'
        adaptctl profile --pid $pid --duration 5s --json
        echo '--- END profile ---'
        wait $pid
        cat /tmp/w.out"#,
    );
    assert_clean(&out);
    let p = document(&out, "profile");
    assert!(out.stdout.contains("late threads started"));
    assert!(
        share(&p, "adapt_work_late") > 0.10,
        "late threads missing: {p}"
    );
    assert!(p["threads"].as_u64().unwrap() >= 3, "{p}");
}

#[test]
fn a_target_that_exits_ends_the_profile_and_nothing_leaks() {
    let out = guest(
        r#"set -e
        echo clear > /sys/kernel/debug/kmemleak
        adapt-workload split --seconds 6 --threads 2 >/dev/null &
        pid=$!
        sleep 0.3
        start=$(date +%s)
        echo '--- BEGIN profile ---'
        adaptctl profile --pid $pid --duration 30s --json
        echo '--- END profile ---'
        echo "took=$(( $(date +%s) - start ))"
        wait $pid || true
        rmmod adapt
        insmod "$ADAPT_KO"
        kmemleak_count
        rmmod adapt"#,
    );
    assert_clean(&out);
    let p = document(&out, "profile");
    assert_eq!(p["target_exited"], true, "{p}");
    assert!(p["total_samples"].as_u64().unwrap() > 0);
    let took = common::number(&out, "took");
    assert!(
        took < 20,
        "profile should end with the target (6 s), not run its 30 s: took {took} s"
    );
    assert_no_leaks(&out);
}

#[test]
fn a_shared_library_function_is_symbolized_by_name() {
    // An unmodified program using the system libz.so.1.
    let out = guest(
        r#"set -e
        python3 -c '
import zlib, time
data = bytes(range(256)) * 4096
end = time.time() + 8
while time.time() < end:
    zlib.crc32(data)
' &
        pid=$!
        sleep 2
        echo '--- BEGIN profile ---'
        adaptctl profile --pid $pid --duration 4s --json
        echo '--- END profile ---'
        wait $pid"#,
    );
    assert_clean(&out);
    let p = document(&out, "profile");
    let top = &p["functions"][0];
    let name = top["function"].as_str().unwrap();
    assert!(name == "crc32_z" || name == "crc32", "{p}");
    assert!(top["object"].as_str().unwrap().contains("libz.so"), "{top}");
    assert!(top["share"].as_f64().unwrap() > 0.5, "{top}");
}

#[test]
fn bad_targets_are_refused_each_with_its_own_error() {
    let out = guest(
        r#"
        adaptctl profile --pid 999999 --duration 1s; echo "missing=$?"
        adaptctl profile --pid 2 --duration 1s; echo "kthread=$?"
        adaptctl profile --pid 1 --freq 5 --duration 1s; echo "freq=$?"
        setpriv --reuid=65534 --regid=65534 --clear-groups adaptctl profile --pid 1 --duration 1s; echo "nonroot=$?"
        "#,
    );
    assert_clean(&out);
    let s = &out.stdout;
    assert!(
        s.contains("missing=8") && s.contains("no process with pid 999999"),
        "{s}"
    );
    assert!(
        s.contains("kthread=9") && s.contains("kernel thread"),
        "{s}"
    );
    assert!(s.contains("freq=1") && s.contains("out of bounds"), "{s}");
    assert!(
        s.contains("nonroot=5") && s.contains("permission denied"),
        "{s}"
    );
}
