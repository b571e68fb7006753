//! `adaptctl auto` judging by time per call (issue 12 §3), on an
//! unmodified python3 that spends nearly all its time in one zlib
//! function: crc32-bound (>95 % in `crc32_z`) and adler32-bound. The
//! share of CPU time cannot tell a faster function there; time per call
//! can. auto measures the variants first (under TCG the portable ones win:
//! the same pclmul/AVX2 code that is faster natively is slower emulated,
//! see BENCHMARKS.md) and then judges the chosen one per call. Each
//! workload's own throughput (MB/s, printed every second) is read
//! for 6 s before auto and 6 s after it left its kept injections in place:
//! auto must never leave the program slower than it found it, and every
//! verdict must agree with its own interval. Then the crc32-bound program
//! again while another process forges its call counters (they live in its
//! own memory): auto must refuse the counts, not judge by them. One boot,
//! the three runs one after the other.

mod common;

use common::{assert_clean, median, section};
use serde_json::Value;

/// MB/s figures of a `zlib_mix.py` output section.
fn throughput(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.trim().strip_suffix("MB/s"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// The verdict figures of a kept or reverted decision judged per call.
fn interval(d: &Value) -> Option<(f64, f64, f64)> {
    let v = &d["details"]["verdict"];
    Some((
        v["speedup"].as_f64()?,
        v["low"].as_f64()?,
        v["high"].as_f64()?,
    ))
}

#[test]
fn auto_judges_a_saturated_function_by_time_per_call_and_never_leaves_it_slower() {
    let guest = common::guest(1200);
    let out = common::run_bash(
        &guest,
        r#"
        set -e
        exec 2>&1
        run() {
            name=$1; shift
            python3 @WORKLOADS@/zlib_mix.py 400 "$@" > /tmp/$name.out &
            pid=$!
            wait_line /tmp/$name.out '^ready'
            sleep 8
            n1=$(wc -l < /tmp/$name.out)
            adaptctl auto --pid $pid --once --window 3s --json > /tmp/$name.jsonl
            n2=$(wc -l < /tmp/$name.out)
            sleep 7
            n3=$(wc -l < /tmp/$name.out)
            adaptctl list --pid $pid --json > /tmp/$name.list
            echo "$name-live=$(j /tmp/$name.list injections.len)"
            echo "--- BEGIN $name-before ---"; sed -n "$((n1 - 5)),${n1}p" /tmp/$name.out; echo "--- END $name-before ---"
            echo "--- BEGIN $name-after ---"; sed -n "$((n2 + 2)),${n3}p" /tmp/$name.out; echo "--- END $name-after ---"
            echo "--- BEGIN $name-decisions ---"; cat /tmp/$name.jsonl; echo "--- END $name-decisions ---"
            adaptctl revert --pid $pid --all > /dev/null 2>&1 || true
            kill -TERM $pid
            wait $pid && rc=0 || rc=$?
            echo "$name-exit=$rc"
            grep '^checked=' /tmp/$name.out | sed "s/^/$name-/"
        }
        # crc32-bound: 1 MiB CRCs, no adler32, no Python work.
        run crc 1024 0 0
        # adler32-bound.
        run adler 0 1024 0
        # Hostile: another process keeps adding 2^40 to the call counter of
        # every adapt data area in the target (its own memory).
        python3 @WORKLOADS@/zlib_mix.py 400 1024 0 0 > /tmp/forged.out &
        pid=$!
        wait_line /tmp/forged.out '^ready'
        python3 @WORKLOADS@/forge_counts.py $pid 120 > /tmp/forger.out &
        fpid=$!
        ADAPT_NO_MEASURE=1 adaptctl auto --pid $pid --once --window 1s --json > /tmp/forged.jsonl
        adaptctl list --pid $pid --json > /tmp/forged.list
        echo "forged-live=$(j /tmp/forged.list injections.len)"
        kill -TERM $fpid 2>/dev/null || true
        wait $fpid || true
        sed 's/^/forger-/' /tmp/forger.out
        echo "--- BEGIN forged-decisions ---"; cat /tmp/forged.jsonl; echo "--- END forged-decisions ---"
        kill -TERM $pid
        wait $pid && rc=0 || rc=$?
        echo "forged-exit=$rc"
        grep '^checked=' /tmp/forged.out | sed "s/^/forged-/"
        "#,
    );
    assert_clean(&out);
    let mut figures = String::new();
    for (name, function) in [("crc", "crc32_z"), ("adler", "adler32_z")] {
        let before = median(throughput(section(&out, &format!("{name}-before"))));
        let after = median(throughput(section(&out, &format!("{name}-after"))));
        let d = common::decisions(section(&out, &format!("{name}-decisions")));
        let about: Vec<&Value> = d.iter().filter(|v| v["function"] == function).collect();
        // Either the measurement before injecting found no variant faster
        // here (TCG's relative speeds move with the host's load: the
        // portable adler32 measured 1.27× on a quiet host, 0.97× at load 8),
        // or a per-call verdict.
        let skipped = about.iter().find(|v| {
            v["kind"] == "skipped"
                && v["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("measured on this machine"))
        });
        if let Some(s) = skipped {
            // Nothing was changed: the throughput figures then only show
            // TCG's drift on this host (seen: 466 → 321 MB/s), reported.
            figures += &format!(
                "{name}: {before:.1} → {after:.1} MB/s with nothing injected; {}\n",
                s["reason"]
            );
            continue;
        }
        let judged: Vec<&&Value> = about
            .iter()
            .filter(|v| v["kind"] == "kept" || v["kind"] == "reverted")
            .collect();
        assert_eq!(
            judged.len(),
            1,
            "{name}: one verdict on {function}:\n{}",
            out.stdout
        );
        let verdict = judged[0];
        let (speedup, low, high) =
            interval(verdict).unwrap_or_else(|| panic!("{name}: not judged per call:\n{verdict}"));
        let reason = verdict["reason"].as_str().unwrap_or_default();
        figures += &format!(
            "{name}: {before:.1} → {after:.1} MB/s ({:.2}×); {} {speedup:.2}× [{low:.2}, {high:.2}]: {reason}\n",
            after / before,
            verdict["kind"]
        );
        assert!(low <= speedup && speedup <= high, "{name}: {verdict}");
        match verdict["kind"].as_str() {
            Some("kept") => assert!(
                low >= 1.0,
                "{name}: kept without the interval above 1: {verdict}"
            ),
            _ if reason.starts_with("regression") => {
                assert!(
                    high < 1.0,
                    "{name}: a regression needs the interval below 1: {verdict}"
                )
            }
            _ => {}
        }
        // Never slower than it was found (see the helper for why a
        // reverted verdict's throughput is not judged).
        common::assert_left_never_slower(
            name,
            verdict["kind"].as_str().unwrap_or_default(),
            common::value(&out, &format!("{name}-live")),
            before,
            after,
            &out,
        );
        assert_eq!(
            common::value(&out, &format!("{name}-exit")),
            "0",
            "{}",
            out.stdout
        );
        assert!(
            common::value(&out, &format!("{name}-checked")).ends_with(" wrong=0"),
            "{name}: wrong checksums:\n{}",
            out.stdout
        );
    }
    // When the measurement chose an adler32 variant, the per-call verdict
    // must see it faster too: kept, or, when TCG's call rate swung between
    // windows so that even with the measurement as a prior the interval
    // still straddles the margin, not kept but with a time per call that
    // improved (seen: 1.28× [0.90, 1.82] on a quiet host, one pair of
    // windows at half the calls of the others). A point estimate at or
    // below 1 would mean the two measurements disagree.
    let adler = common::decisions(section(&out, "adler-decisions"));
    if adler.iter().any(|v| v["kind"] == "injected") {
        let verdict = adler
            .iter()
            .find(|v| {
                v["function"] == "adler32_z" && (v["kind"] == "kept" || v["kind"] == "reverted")
            })
            .unwrap_or_else(|| panic!("adler32_z injected but never judged:\n{}", out.stdout));
        if verdict["kind"] != "kept" {
            let (speedup, _, _) = interval(verdict)
                .unwrap_or_else(|| panic!("adler32_z not judged per call:\n{verdict}"));
            assert!(
                speedup > 1.0,
                "adler32_z was measured faster, injected, and then judged no faster per call:\n{figures}\n{}",
                out.stdout
            );
        }
    }
    // The forged counts: refused as implausible, reverted, nothing left
    // in the target, which ran correctly throughout.
    let forged = common::decisions(section(&out, "forged-decisions"));
    let verdicts: Vec<&Value> = forged
        .iter()
        .filter(|v| v["kind"] == "kept" || v["kind"] == "reverted")
        .collect();
    assert_eq!(verdicts.len(), 1, "one verdict:\n{}", out.stdout);
    assert_eq!(verdicts[0]["kind"], "reverted", "{}", out.stdout);
    assert_eq!(
        verdicts[0]["details"]["verdict"]["verdict"], "implausible-counts",
        "{}",
        out.stdout
    );
    assert!(
        common::number(&out, "forger-forged") > 0,
        "the forger never found a data area:\n{}",
        out.stdout
    );
    assert_eq!(common::value(&out, "forged-live"), "0", "{}", out.stdout);
    assert_eq!(common::value(&out, "forged-exit"), "0", "{}", out.stdout);
    assert!(
        common::value(&out, "forged-checked").ends_with(" wrong=0"),
        "{}",
        out.stdout
    );
    eprintln!("{figures}");
}
