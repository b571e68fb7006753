//! The injector in a real guest, driven the way a user would (adaptctl),
//! with the many-cycle loops through `adapt-inject-tool cycle` (the same
//! ioctls, without an adaptctl process per cycle): multi-threaded zlib
//! `crc32` under inject/revert loops with every result checked, the same
//! for a function inside a PIE executable, W^X, the lifecycle of the target
//! (exit, exec, fork), rmmod with live injections, and every refusal.
//! The runner fails any test whose guest kernel logged a WARN, BUG, oops,
//! lockdep or kmemleak report.

mod common;

use adapt_qemu_tests::GuestOutput;
use common::{assert_clean, assert_no_leaks, document, number, value};
use serde_json::Value;

/// Shell helpers on top of the common ones (bash).
///
/// - `start NAME ARGS…`: runs `adapt-crc-stress --control /tmp/NAME.ctl
///   ARGS…` in the background, output in /tmp/NAME.out, pid in `$PID_NAME`,
///   and waits for its `ready` line.
/// - `finish NAME`: SIGTERM, wait, print `NAME exit=N` and its summary line
///   (and any WRONG line) prefixed with `NAME: `.
const PRELUDE: &str = r#"
set -e
start() {
    local name=$1; shift
    adapt-crc-stress --control /tmp/$name.ctl "$@" > /tmp/$name.out &
    eval "PID_$name=$!"
    wait_line /tmp/$name.out '^ready'
}
finish() {
    local name=$1 pid rc
    eval "pid=\$PID_$name"
    kill -TERM $pid
    wait $pid && rc=0 || rc=$?
    echo "$name exit=$rc"
    grep -E '^(calls=|WRONG)' /tmp/$name.out | sed "s/^/$name: /"
}
"#;

fn guest(script: &str) -> GuestOutput {
    // Correctness, not speed: inject whatever variant this CPU runs best,
    // without the in-situ measurement (which may decline).
    let guest = common::guest(900).env("ADAPT_NO_MEASURE", "1");
    common::run_bash(&guest, &format!("{PRELUDE}\n{script}"))
}

/// Asserts that workload `name` exited 0 after calls with no wrong result.
fn assert_workload_correct(out: &GuestOutput, name: &str) {
    assert_eq!(value(out, &format!("{name} exit")), "0", "{}", out.stdout);
    let summary = value(out, &format!("{name}: calls"));
    let calls: u64 = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        calls > 1000,
        "{name} made only {calls} calls: {}",
        out.stdout
    );
    assert!(summary.contains(" wrong=0 "), "{name}: {summary}");
    assert!(
        !out.stdout.contains(&format!("{name}: WRONG")),
        "{}",
        out.stdout
    );
}

/// Inject/revert `cycles` times with 8 threads calling the function, and
/// watch the maps meanwhile; `inject` are the adaptctl arguments naming the
/// function, `stress` the workload's.
fn cycles_script(stress: &str, inject: &str, cycles: u32) -> String {
    format!(
        r#"
        start a --threads 8 {stress}
        adaptctl inject --dry-run --json --pid $PID_a {inject} > /tmp/plan.json
        addr=$(j /tmp/plan.json target.symbol.address)
        before=$(peek $PID_a $addr 16)
        adaptctl inject --json --pid $PID_a {inject} > /tmp/inj.json
        id=$(j /tmp/inj.json injection.id)
        during=$(peek $PID_a $addr 16)
        adaptctl revert --id $id
        ( while [ ! -e /tmp/cycles.done ]; do grep '\[adapt:' /proc/$PID_a/maps || true; done ) > /tmp/maps.log &
        watcher=$!
        adapt-inject-tool cycle /tmp/inj.json {cycles} > /tmp/cycle.json || true
        touch /tmp/cycles.done
        wait $watcher
        for i in 1 2; do
            adaptctl inject --json --pid $PID_a {inject} > /dev/null
            adaptctl revert --pid $PID_a --symbol $(j /tmp/plan.json target.symbol.name)
        done
        echo "before=$before"
        echo "during=$during"
        echo "after=$(peek $PID_a $addr 16)"
        echo "maps_seen=$(wc -l < /tmp/maps.log)"
        echo "maps_writable=$(awk '$2 ~ /w/' /tmp/maps.log | wc -l)"
        echo "maps_left=$(grep -c '\[adapt:' /proc/$PID_a/maps || true)"
        echo "live_left=$(adaptctl list --pid $PID_a --json > /tmp/l.json; j /tmp/l.json injections.len)"
        echo "retired_left=$(j /tmp/l.json retired)"
        echo '--- BEGIN cycle ---'; cat /tmp/cycle.json; echo '--- END cycle ---'
        finish a
        "#
    )
}

fn assert_cycles(out: &GuestOutput, cycles: u64) {
    assert_clean(out);
    let c = document(out, "cycle");
    assert_eq!(c["error"], Value::Null, "{c}");
    assert_eq!(c["cycles_done"], cycles, "{c}");
    assert!(
        c["max_threads"].as_u64().unwrap() >= 9,
        "8 workers and the main thread were held: {c}"
    );
    let (before, during, after) = (
        value(out, "before"),
        value(out, "during"),
        value(out, "after"),
    );
    assert!(
        during.starts_with("e9"),
        "the entry is a jmp rel32 while injected: {during}"
    );
    assert_ne!(during, before);
    assert_eq!(
        after, before,
        "the text after the last revert is the original"
    );
    assert!(
        number(out, "maps_seen") > 0,
        "the watcher saw the segment mapped"
    );
    assert_eq!(value(out, "maps_writable"), "0", "{}", out.stdout);
    // The reverted segment stays mapped, inert, and every new injection of
    // the variant reused it: one placement (a code and at most one data
    // mapping) after all the cycles, not one per cycle.
    assert_eq!(value(out, "retired_left"), "1", "{}", out.stdout);
    let maps_left = number(out, "maps_left");
    assert!((1..=2).contains(&maps_left), "{}", out.stdout);
    assert_eq!(value(out, "live_left"), "0");
    assert_workload_correct(out, "a");
}

#[test]
fn zlib_crc32_under_8_threads_survives_500_inject_revert_cycles() {
    let out = guest(&cycles_script("", "--symbol crc32", 500));
    assert_cycles(&out, 500);
}

#[test]
fn a_function_of_the_pie_executable_survives_500_inject_revert_cycles() {
    let inject = "--symbol adapt_probe_crc32 --segment crc32 --function crc32 --assume-contract 'u64(u64,const u8*,u32)'";
    let script = format!(
        r#"
        start b --threads 1 --target exe
        adaptctl inject --pid $PID_b --symbol adapt_probe_crc32 --segment crc32 --function crc32 && rc=0 || rc=$?
        echo "unvouched=$rc"
        finish b
        {}"#,
        cycles_script("--target exe", inject, 500)
    );
    let out = guest(&script);
    assert_eq!(
        value(&out, "unvouched"),
        "15",
        "no contract for an executable's function without --assume-contract"
    );
    assert!(
        out.stdout.contains("cannot vouch for the C contract"),
        "{}",
        out.stdout
    );
    assert_cycles(&out, 500);
    assert!(
        out.stdout.contains("adapt_probe_crc32 in ") && out.stdout.contains("/adapt-crc-stress"),
        "the executable is the object: {}",
        out.stdout
    );
}

#[test]
fn segments_are_never_writable() {
    let out = guest(
        r#"
        start a --threads 4
        adaptctl inject --json --pid $PID_a --symbol crc32 > /tmp/inj.json
        seg=$(j /tmp/inj.json injection.segment_addr)
        echo wx > /tmp/a.ctl
        wait_line /tmp/a.out '^wx mappings='
        grep '^wx' /tmp/a.out
        adapt-inject-tool poke $PID_a $seg
        echo "--- maps"; grep '\[adapt:' /proc/$PID_a/maps; echo "--- end maps"
        adaptctl revert --pid $PID_a --all
        finish a
        "#,
    );
    assert_clean(&out);
    let wx: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("wx mapping="))
        .collect();
    assert!(!wx.is_empty(), "{}", out.stdout);
    for line in &wx {
        assert!(line.contains("mprotect_rw=refused"), "{line}");
        assert!(line.contains("mprotect_rwx=refused"), "{line}");
        assert!(line.contains("procmem_write=refused"), "{line}");
        let perms = line
            .split("perms=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert_eq!(perms.as_bytes()[1], b'-', "never writable: {line}");
    }
    assert!(
        out.stdout
            .contains(&format!("wx mappings={} violations=0", wx.len())),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("poke=refused"),
        "a write through /proc/PID/mem fails: {}",
        out.stdout
    );
    let maps = out
        .stdout
        .split("--- maps")
        .nth(1)
        .unwrap()
        .split("--- end maps")
        .next()
        .unwrap();
    let code = maps.lines().filter(|l| l.contains(" r-x")).count();
    assert!(code >= 1, "{maps}");
    for line in maps.lines().filter(|l| l.contains("[adapt:")) {
        let perms = line.split_whitespace().nth(1).unwrap();
        assert!(
            perms == "r-xs" || perms == "r--s" || perms == "r-xp" || perms == "r--p",
            "{line}"
        );
    }
    assert_workload_correct(&out, "a");
}

#[test]
fn a_target_that_exits_during_an_injection_leaves_nothing_behind() {
    let out = guest(
        r#"
        echo clear > /sys/kernel/debug/kmemleak
        start a --threads 4
        adaptctl inject --json --pid $PID_a --symbol crc32 > /tmp/inj.json
        id=$(j /tmp/inj.json injection.id)
        adaptctl inject --pid $PID_a --symbol adler32 > /dev/null
        kill -KILL $PID_a; wait $PID_a || true
        sleep 1
        echo "live_left=$(adaptctl list --json > /tmp/l.json; j /tmp/l.json injections.len)"
        adaptctl revert --id $id && rc=0 || rc=$?
        echo "revert_after_exit=$rc"
        rmmod adapt
        kmemleak_count
        "#,
    );
    assert_clean(&out);
    assert_eq!(value(&out, "live_left"), "0", "{}", out.stdout);
    assert_eq!(value(&out, "revert_after_exit"), "12", "{}", out.stdout);
    assert!(
        out.stdout.contains("no live injection has id"),
        "{}",
        out.stdout
    );
    assert_no_leaks(&out);
}

#[test]
fn a_target_that_execs_after_an_injection_starts_clean() {
    let out = guest(
        r#"
        start a --threads 4
        adaptctl inject --json --pid $PID_a --symbol crc32 > /tmp/inj.json
        id=$(j /tmp/inj.json injection.id)
        echo exec > /tmp/a.ctl
        wait_line /tmp/a.out 'generation=1'
        sleep 1
        echo "live_left=$(adaptctl list --pid $PID_a --json > /tmp/l.json; j /tmp/l.json injections.len)"
        echo "maps_left=$(grep -c '\[adapt:' /proc/$PID_a/maps || true)"
        adaptctl revert --id $id && rc=0 || rc=$?
        echo "revert_after_exec=$rc"
        adaptctl inject --pid $PID_a --symbol crc32 > /dev/null
        sleep 2
        adaptctl revert --pid $PID_a --all
        finish a
        "#,
    );
    assert_clean(&out);
    assert_eq!(value(&out, "live_left"), "0", "{}", out.stdout);
    assert_eq!(value(&out, "maps_left"), "0", "{}", out.stdout);
    assert_eq!(value(&out, "revert_after_exec"), "12", "{}", out.stdout);
    assert_workload_correct(&out, "a");
}

#[test]
fn a_child_forked_after_an_injection_keeps_working_after_the_parents_revert() {
    let out = guest(
        r#"
        start a --threads 4
        adaptctl inject --dry-run --json --pid $PID_a --symbol crc32 > /tmp/plan.json
        addr=$(j /tmp/plan.json target.symbol.address)
        original=$(peek $PID_a $addr 8)
        adaptctl inject --json --pid $PID_a --symbol crc32 > /tmp/inj.json
        echo fork > /tmp/a.ctl
        wait_line /tmp/a.out '^forked'
        child=$(awk '/^forked/{print $2}' /tmp/a.out)
        sleep 2
        echo "child_maps=$(grep -c '\[adapt:' /proc/$child/maps || true)"
        adaptctl revert --pid $PID_a --all
        sleep 3
        echo "parent_bytes_ok=$([ "$(peek $PID_a $addr 8)" = "$original" ] && echo yes || echo no)"
        echo "parent_live=$(adaptctl list --pid $PID_a --json > /tmp/l.json; j /tmp/l.json injections.len)"
        echo "parent_retired=$(j /tmp/l.json retired)"
        echo "child_alive=$(kill -0 $child && echo yes || echo no)"
        kill -TERM $child
        wait_line /tmp/a.out '^child calls='
        grep '^child' /tmp/a.out
        finish a
        "#,
    );
    assert_clean(&out);
    assert!(
        number(&out, "child_maps") >= 1,
        "the child inherits the mapping: {}",
        out.stdout
    );
    assert_eq!(value(&out, "parent_bytes_ok"), "yes");
    assert_eq!(value(&out, "parent_live"), "0");
    assert_eq!(
        value(&out, "parent_retired"),
        "1",
        "the reverted segment stays mapped, inert"
    );
    assert_eq!(value(&out, "child_alive"), "yes", "{}", out.stdout);
    let child = value(&out, "child calls");
    assert!(child.ends_with(" wrong=0"), "{child}");
    assert!(
        child
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 100,
        "{child}"
    );
    assert_workload_correct(&out, "a");
}

#[test]
fn rmmod_reverts_10_live_injections_in_3_processes_and_they_keep_running() {
    let out = guest(
        r#"
        start a --threads 3
        start b --threads 3
        start c --threads 3
        adaptctl inject --dry-run --json --pid $PID_a --symbol crc32 > /tmp/plan.json
        addr=$(j /tmp/plan.json target.symbol.address)
        for n in a b c; do eval "p=\$PID_$n"; echo "$(peek $p $addr 16)" > /tmp/orig.$n; done
        for n in a b; do
            eval "p=\$PID_$n"
            for s in crc32 crc32_z adler32 adler32_z; do adaptctl inject --pid $p --symbol $s > /dev/null; done
        done
        for s in crc32 adler32; do adaptctl inject --pid $PID_c --symbol $s > /dev/null; done
        echo "live=$(adaptctl list --json > /tmp/l.json; j /tmp/l.json injections.len)"
        echo "patched=$(peek $PID_a $addr 1)"
        rmmod adapt && rc=0 || rc=$?
        echo "rmmod=$rc"
        sleep 3
        restored=0
        for n in a b c; do
            eval "p=\$PID_$n"
            [ "$(peek $p $addr 16)" = "$(cat /tmp/orig.$n)" ] && restored=$((restored + 1))
            grep '\[adapt:' /proc/$p/maps | awk '$2 ~ /w/' | sed "s/^/writable mapping in $n: /"
        done
        echo "restored=$restored"
        finish a
        finish b
        finish c
        "#,
    );
    assert_clean(&out);
    assert_eq!(value(&out, "live"), "10", "{}", out.stdout);
    assert_eq!(value(&out, "patched"), "e9");
    assert_eq!(value(&out, "rmmod"), "0", "{}", out.stdout);
    assert_eq!(value(&out, "restored"), "3", "{}", out.stdout);
    // Reverted segments stay mapped (inert, never writable) after unload.
    assert!(!out.stdout.contains("writable mapping"), "{}", out.stdout);
    for name in ["a", "b", "c"] {
        assert_workload_correct(&out, name);
    }
}

#[test]
fn refused_and_impossible_requests_each_have_their_own_error() {
    let out = guest(
        r#"
        set +e
        start a --threads 2
        adaptctl inject --json --pid $PID_a --symbol crc32 > /tmp/inj.json
        id=$(j /tmp/inj.json injection.id)
        adaptctl revert --id $id > /dev/null; echo "first=$?"
        adaptctl revert --id $id; echo "double=$?"
        adaptctl revert --id 999999; echo "unknown=$?"
        adaptctl inject --pid 999999 --symbol crc32; echo "missing=$?"
        adaptctl inject --pid 2 --symbol crc32; echo "kthread=$?"
        adapt-inject-tool inject /tmp/inj.json --pid 999999
        adapt-inject-tool inject /tmp/inj.json --pid 2
        setpriv --reuid=65534 --regid=65534 --clear-groups adaptctl inject --pid $PID_a --symbol crc32; echo "nonroot=$?"
        adaptctl policy set --disable > /dev/null
        adaptctl inject --pid $PID_a --symbol crc32; echo "disabled=$?"
        adapt-inject-tool inject /tmp/inj.json
        adaptctl policy set --enable --max-per-process 1 > /dev/null
        adaptctl inject --pid $PID_a --symbol crc32 > /dev/null; echo "one=$?"
        adaptctl inject --pid $PID_a --symbol crc32_z; echo "limit=$?"
        adaptctl revert --pid $PID_a --all > /dev/null; echo "revert_all=$?"
        echo "live_left=$(adaptctl list --json > /tmp/l.json; j /tmp/l.json injections.len)"
        set -e
        finish a
        "#,
    );
    assert_clean(&out);
    let s = &out.stdout;
    assert_eq!(value(&out, "first"), "0", "{s}");
    assert_eq!(value(&out, "double"), "12", "{s}");
    assert!(s.contains("(ENOENT): it was reverted already"), "{s}");
    assert_eq!(value(&out, "unknown"), "12", "{s}");
    assert!(s.contains("no live injection has id 999999"), "{s}");
    assert_eq!(value(&out, "missing"), "8", "{s}");
    assert!(s.contains("no process with pid 999999"), "{s}");
    assert_eq!(value(&out, "kthread"), "9", "{s}");
    assert!(s.contains("pid 2 is a kernel thread"), "{s}");
    // The module's own answers, below adaptctl's checks.
    assert!(s.contains("inject=error kind=no-such-process"), "{s}");
    assert!(s.contains("inject=error kind=kernel-thread"), "{s}");
    assert_eq!(value(&out, "nonroot"), "5", "{s}");
    assert!(s.contains("permission denied"), "{s}");
    assert_eq!(value(&out, "disabled"), "14", "{s}");
    assert!(
        s.contains("injection is disabled by the module's policy"),
        "{s}"
    );
    assert!(s.contains("inject=error kind=policy-disabled"), "{s}");
    assert_eq!(value(&out, "one"), "0", "{s}");
    assert_eq!(value(&out, "limit"), "14", "{s}");
    assert!(
        s.contains("injection limit is reached (EDQUOT: at most 1 per process"),
        "{s}"
    );
    assert_eq!(value(&out, "revert_all"), "0", "{s}");
    assert_eq!(value(&out, "live_left"), "0", "{s}");
    assert_workload_correct(&out, "a");
}
