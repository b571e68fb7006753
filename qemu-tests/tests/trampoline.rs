//! Segments with imports in a real guest (issue 12 §1): a segment that
//! computes long buffers itself and tail-jumps through its import table to
//! `fallback` (the trampoline: zlib's own `crc32_z` entry relocated) for
//! short ones, injected into a multi-threaded workload calling `crc32_z`
//! with every size, also over 500 inject/revert cycles; results checked
//! call by call, the trampoline and the
//! import table placed as the format says (code+trampoline r-x, import
//! table r--, nothing writable), the import shown by `adaptctl list`,
//! reverted; an import that resolves nowhere refuses the injection; a
//! thread blocked in a system call inside the trampoline keeps a revert
//! from retiring it (busy) until it has left; no leak. One boot: the scenarios are independent and run one after the
//! other.

mod common;

use common::{assert_clean, assert_no_leaks, document, number, value};

#[test]
fn a_segment_calls_the_original_through_its_trampoline_and_unresolved_imports_are_refused() {
    let guest = common::guest(900).env("ADAPT_NO_MEASURE", "1");
    let out = common::run_bash(
        &guest,
        r#"
        set -e
        exec 2>&1
        echo clear > /sys/kernel/debug/kmemleak || true
        lib=@TARGET@/adapt-library-testing
        adapt-crc-stress --threads 8 --target libz-z --max-len 512 --control /tmp/a.ctl > /tmp/a.out &
        pid=$!
        wait_line /tmp/a.out '^ready'
        adaptctl inject --dry-run --json --pid $pid --symbol crc32_z --segment crc32-fallback --dir $lib > /tmp/plan.json
        addr=$(j /tmp/plan.json target.symbol.address)
        before=$(peek $pid $addr 16)
        adaptctl inject --json --timings --pid $pid --symbol crc32_z --segment crc32-fallback --dir $lib > /tmp/inj.json 2> /tmp/timings.txt || { cat /tmp/timings.txt; exit 1; }
        id=$(j /tmp/inj.json injection.id)
        seg=$(j /tmp/inj.json injection.segment_addr)
        echo "during=$(peek $pid $addr 16)"
        echo "--- BEGIN maps ---"; grep '\[adapt:' /proc/$pid/maps; echo "--- END maps ---"
        echo "maps_writable=$(grep '\[adapt:' /proc/$pid/maps | awk '$2 ~ /w/' | wc -l)"
        echo "maps_rx=$(grep '\[adapt:' /proc/$pid/maps | awk '$2 ~ /^r-x/' | wc -l)"
        echo "maps_ro=$(grep '\[adapt:' /proc/$pid/maps | awk '$2 ~ /^r--/' | wc -l)"
        adaptctl list --pid $pid --json > /tmp/list.json
        echo '--- BEGIN list ---'; cat /tmp/list.json; echo '--- END list ---'
        echo "timings_inject=$(grep -c 'inject' /tmp/timings.txt || true)"
        sleep 4
        adaptctl revert --id $id
        echo "after=$(peek $pid $addr 16)"
        echo "before=$before"
        # Again, on the retired mapping (same address, same trampoline).
        adaptctl inject --json --pid $pid --symbol crc32_z --segment crc32-fallback --dir $lib > /tmp/inj2.json
        echo "seg2=$(j /tmp/inj2.json injection.segment_addr)"
        echo "seg1=$seg"
        sleep 2
        adaptctl revert --pid $pid --all
        # 500 inject/revert cycles of the exact request (same placement and
        # trampoline: the retired mapping is reused every time).
        adapt-inject-tool cycle /tmp/inj.json 500 > /tmp/cycle.json || true
        echo '--- BEGIN cycle ---'; cat /tmp/cycle.json; echo '--- END cycle ---'
        echo "retired_after=$(adaptctl list --pid $pid --json > /tmp/rl.json; j /tmp/rl.json retired)"
        adaptctl inject --json --pid $pid --symbol crc32_z --segment crc32-unresolved --dir $lib > /tmp/unres.json 2> /tmp/unres.err && rc=0 || rc=$?
        echo "unresolved_rc=$rc"
        echo '--- BEGIN unresolved ---'; cat /tmp/unres.json; echo '--- END unresolved ---'
        cat /tmp/unres.err
        echo "live_left=$(adaptctl list --pid $pid --json > /tmp/l.json; j /tmp/l.json injections.len)"
        kill -TERM $pid
        wait $pid && rc=0 || rc=$?
        echo "a exit=$rc"
        grep -E '^(calls=|WRONG)' /tmp/a.out | sed 's/^/a: /' | head -5

        # Hostile: a thread blocked in a system call inside the trampoline.
        rm -f /tmp/b.ctl; mkfifo /tmp/b.ctl
        adapt-blocking < /tmp/b.ctl > /tmp/b.out &
        bpid=$!
        exec 3>/tmp/b.ctl
        wait_line /tmp/b.out '^ready'
        adaptctl inject --json --pid $bpid --symbol adapt_probe_blocking_read --segment blocking-fallback \
            --dir $lib --assume-contract 'i64(i32,u8*,u64)' > /tmp/binj.json
        bid=$(j /tmp/binj.json injection.id)
        echo call >&3
        sleep 2
        adaptctl revert --json --id $bid > /tmp/brev.json && rc=0 || rc=$?
        echo "blocked_revert_rc=$rc"
        echo '--- BEGIN blocked ---'; cat /tmp/brev.json; echo '--- END blocked ---'
        echo "blocked_live=$(adaptctl list --pid $bpid --json > /tmp/bl.json; j /tmp/bl.json injections.len)"
        echo release >&3
        wait_line /tmp/b.out '^returned=1'
        adaptctl revert --id $bid && rc=0 || rc=$?
        echo "released_revert_rc=$rc"
        echo call >&3
        sleep 1
        echo release >&3
        for _ in $(seq 100); do [ "$(grep -c '^returned=1' /tmp/b.out)" -ge 2 ] && break; sleep 0.1; done
        echo "b_returned=$(grep -c '^returned=1' /tmp/b.out)"
        exec 3>&-
        wait $bpid && rc=0 || rc=$?
        echo "b exit=$rc"
        kmemleak_count
        "#,
    );
    assert_clean(&out);
    let during = value(&out, "during");
    assert!(
        during.starts_with("e9"),
        "the entry is a jmp rel32: {during}"
    );
    assert_eq!(
        value(&out, "after"),
        value(&out, "before"),
        "{}",
        out.stdout
    );
    assert_eq!(value(&out, "maps_writable"), "0", "{}", out.stdout);
    assert!(number(&out, "maps_rx") >= 1, "{}", out.stdout);
    assert!(
        number(&out, "maps_ro") >= 1,
        "the import table is its own read-only mapping: {}",
        out.stdout
    );
    let list = document(&out, "list");
    let imports = &list["injections"][0]["imports"];
    assert_eq!(imports[0]["symbol"], "fallback", "{list}");
    assert_ne!(list["injections"][0]["trampoline_addr"], 0, "{list}");
    assert!(number(&out, "timings_inject") >= 1, "{}", out.stdout);
    assert_eq!(
        value(&out, "seg2"),
        value(&out, "seg1"),
        "the retired mapping is reused"
    );
    let cycle = document(&out, "cycle");
    assert_eq!(cycle["error"], serde_json::Value::Null, "{cycle}");
    assert_eq!(cycle["cycles_done"], 500, "{cycle}");
    assert!(
        cycle["max_threads"].as_u64().unwrap() >= 9,
        "8 workers and the main thread were held: {cycle}"
    );
    assert_eq!(value(&out, "retired_after"), "1", "{}", out.stdout);
    assert_eq!(value(&out, "unresolved_rc"), "15", "{}", out.stdout);
    let unresolved = document(&out, "unresolved");
    assert_eq!(
        unresolved["error"]["kind"], "unresolved-import",
        "{unresolved}"
    );
    assert!(
        unresolved["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("adapt_no_such_function"),
        "{unresolved}"
    );
    assert_eq!(value(&out, "live_left"), "0");
    assert_eq!(value(&out, "a exit"), "0", "{}", out.stdout);
    let summary = value(&out, "a: calls");
    let calls: u64 = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(calls > 1000, "{summary}");
    assert!(summary.contains(" wrong=0 "), "{summary}");
    assert!(!out.stdout.contains("a: WRONG"), "{}", out.stdout);
    // A thread blocked inside the trampoline (its instruction pointer and
    // the restart address of its read) keeps the revert from retiring it:
    // refused as busy, the injection still live; once it has left, the
    // revert goes through and the original runs again.
    assert_eq!(value(&out, "blocked_revert_rc"), "17", "{}", out.stdout);
    let blocked = document(&out, "blocked");
    assert_eq!(blocked["error"]["exit_code"], 17, "{blocked}");
    assert_eq!(value(&out, "blocked_live"), "1", "{}", out.stdout);
    assert_eq!(value(&out, "released_revert_rc"), "0", "{}", out.stdout);
    assert_eq!(value(&out, "b_returned"), "2", "{}", out.stdout);
    assert_eq!(value(&out, "b exit"), "0", "{}", out.stdout);
    assert_no_leaks(&out);
}
