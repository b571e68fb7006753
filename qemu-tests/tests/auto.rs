//! `adaptctl auto` in a real guest, on an unmodified python3 whose time goes
//! to the system libz.so.1 (crc32, adler32) and to plain interpreter work.

mod common;

use adapt_qemu_tests::GuestOutput;
use common::assert_clean;
use serde_json::Value;

/// Runs `script` in a guest (`@WORKLOADS@` and `@TARGET@` filled in).
fn guest(script: &str) -> GuestOutput {
    common::run_sh(&common::guest(900), script)
}

/// The JSON-lines decisions printed by `auto --json`.
fn decisions(out: &GuestOutput) -> Vec<Value> {
    common::decisions(&out.stdout)
}

fn of_kind<'a>(d: &'a [Value], kind: &str) -> Vec<&'a Value> {
    d.iter().filter(|v| v["kind"] == kind).collect()
}

#[test]
fn two_covered_hot_functions_are_injected_in_order_and_results_stay_correct() {
    let out = guest(
        r#"set -e
        python3 @WORKLOADS@/zlib_mix.py 100 > /tmp/w.out &
        pid=$!
        sleep 3
        adaptctl auto --pid $pid --once --window 3s --json --no-measure
        adaptctl revert --pid $pid --all >/dev/null 2>&1 || true
        wait $pid
        tail -1 /tmp/w.out"#,
    );
    assert_clean(&out);
    let d = decisions(&out);
    let injected: Vec<&str> = of_kind(&d, "injected")
        .iter()
        .map(|v| v["function"].as_str().unwrap())
        .collect();
    assert_eq!(injected, ["crc32_z", "adler32_z"], "{}", out.stdout);
    // Nothing else was an opportunity: the interpreter has no segment.
    assert!(of_kind(&d, "opportunity")
        .iter()
        .all(|v| v["segment"] == "crc32" || v["segment"] == "adler32"));
    // Every injection was judged, and the reason recorded.
    assert_eq!(
        of_kind(&d, "kept").len() + of_kind(&d, "reverted").len(),
        2,
        "{}",
        out.stdout
    );
    assert!(d
        .iter()
        .filter(|v| v["kind"] == "reverted" || v["kind"] == "kept")
        .all(|v| !v["reason"].as_str().unwrap().is_empty()));
    assert!(out.stdout.contains("wrong=0"), "{}", out.stdout);
}

#[test]
fn a_deliberately_slow_segment_is_reverted_as_a_regression() {
    let out = guest(
        r#"set -e
        python3 @WORKLOADS@/zlib_mix.py 100 256 4 100 > /tmp/w.out &
        pid=$!
        sleep 3
        mkdir -p /tmp/slow-library
        cp @TARGET@/adapt-library-testing/crc32-slow.seg /tmp/slow-library/
        adaptctl auto --pid $pid --once --window 3s --json --no-measure --library /tmp/slow-library
        adaptctl list --pid $pid
        kill $pid
        wait $pid || true"#,
    );
    assert_clean(&out);
    let d = decisions(&out);
    let injected = of_kind(&d, "injected");
    assert_eq!(injected.len(), 1, "{}", out.stdout);
    assert_eq!(injected[0]["segment"], "crc32-slow");
    let reverted = of_kind(&d, "reverted");
    assert_eq!(reverted.len(), 1, "{}", out.stdout);
    assert!(
        reverted[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("regression"),
        "{}",
        out.stdout
    );
    assert_eq!(reverted[0]["details"]["verdict"]["verdict"], "regression");
    assert!(out.stdout.contains("no live injections"), "{}", out.stdout);
}

#[test]
fn a_process_outside_the_policy_is_never_touched_and_limits_hold() {
    let out = guest(
        r#"set -e
        python3 @WORKLOADS@/zlib_mix.py 100 > /tmp/w.out &
        pid=$!
        sleep 3
        printf '[targets]\ncommands = ["not-python"]\n' > /tmp/only-others.toml
        adaptctl policy load /tmp/only-others.toml
        echo '--- outside'
        adaptctl auto --pid $pid --once --window 2s --json --no-measure
        adaptctl list --pid $pid
        printf 'max_injections_per_process = 1\n' > /tmp/one.toml
        adaptctl policy load /tmp/one.toml
        # One injection already there: the limit leaves auto no room, not
        # even for a call counter.
        adaptctl inject --pid $pid --symbol crc32_z --no-measure > /dev/null
        echo '--- limit'
        adaptctl auto --pid $pid --once --window 2s --json --no-measure
        echo "live=$(adaptctl list --pid $pid --json | grep -c '"id"' || true)"
        adaptctl revert --pid $pid --all >/dev/null
        kill $pid"#,
    );
    assert_clean(&out);
    let (outside, limit) = out.stdout.split_once("--- limit").expect("both parts");
    let outside_d = common::decisions(outside);
    assert!(of_kind(&outside_d, "injected").is_empty(), "{outside}");
    assert!(outside.contains("no live injections"), "{outside}");
    assert!(!of_kind(&outside_d, "skipped").is_empty(), "{outside}");
    let limit_d = common::decisions(limit);
    assert!(of_kind(&limit_d, "injected").is_empty(), "{limit}");
    assert!(
        of_kind(&limit_d, "skipped")
            .iter()
            .any(|v| v["function"] == "adler32_z"),
        "{limit}"
    );
    assert!(limit.contains("live=1"), "{limit}");
}

#[test]
fn a_bad_policy_file_is_refused_with_its_line_and_the_old_policy_stays() {
    let out = guest(
        r#"
        printf 'max_injections_total = 7\n' > /tmp/good.toml
        adaptctl policy load /tmp/good.toml; echo "good=$?"
        printf 'enabled = true\n\n[targets]\nexecutables = ["relative/path"]\n' > /tmp/bad.toml
        adaptctl policy load /tmp/bad.toml; echo "bad=$?"
        adaptctl policy show --json
        "#,
    );
    assert_clean(&out);
    assert!(out.stdout.contains("good=0"), "{}", out.stdout);
    assert!(out.stdout.contains("line 4"), "{}", out.stdout);
    assert!(out.stdout.contains("absolute"), "{}", out.stdout);
    assert!(!out.stdout.contains("bad=0"), "{}", out.stdout);
    assert!(out.stdout.contains("\"max_total\": 7"), "{}", out.stdout);
}

#[test]
fn watching_all_processes_survives_processes_coming_and_going() {
    let out = guest(
        r#"set -e
        ( for i in $(seq 12); do python3 @WORKLOADS@/zlib_mix.py 2 >/dev/null & sleep 1; done; wait ) &
        adaptctl auto --all --duration 20s --window 1s --json --no-measure > /tmp/auto.jsonl
        echo "auto=$?"
        wait
        echo "left=$(adaptctl list --json | grep -c '"id"' || true)"
        cat /tmp/auto.jsonl"#,
    );
    assert_clean(&out);
    assert!(out.stdout.contains("auto=0"), "{}", out.stdout);
    assert!(out.stdout.contains("left=0"), "{}", out.stdout);
}

#[test]
fn a_policy_change_takes_effect_without_restarting_the_loop() {
    let out = guest(
        r#"set -e
        python3 @WORKLOADS@/zlib_mix.py 200 > /tmp/w.out &
        pid=$!
        sleep 2
        adaptctl policy set --disable >/dev/null
        adaptctl auto --pid $pid --duration 60s --window 2s --json --no-measure > /tmp/auto.jsonl &
        auto=$!
        sleep 15
        echo "while-disabled=$(grep -c '"kind":"injected"' /tmp/auto.jsonl || true)"
        adaptctl policy set --enable >/dev/null
        sleep 25
        echo "after-enable=$(grep -c '"kind":"injected"' /tmp/auto.jsonl || true)"
        kill -TERM $auto
        wait $auto || true
        echo "left=$(adaptctl list --pid $pid --json | grep -c '"id"' || true)"
        kill $pid"#,
    );
    assert_clean(&out);
    assert!(out.stdout.contains("while-disabled=0"), "{}", out.stdout);
    let after = common::number(&out, "after-enable");
    assert!(
        after >= 1,
        "nothing injected after enabling: {}",
        out.stdout
    );
    // SIGTERM makes auto revert what it kept.
    assert!(out.stdout.contains("left=0"), "{}", out.stdout);
}
