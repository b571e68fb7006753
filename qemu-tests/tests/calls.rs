//! Call counting in a real guest (issue 12 §2): `adaptctl calls` injects
//! the generated counting segment into a target whose 8 threads count
//! their own calls of zlib's `crc32_z`; the target waits while the counter
//! goes in, then makes a known number of calls with a known length
//! distribution, so the count and the histogram of argument 2 (`len`) must
//! be exactly the target's own. Every result is checked by the target;
//! the data area is read+write and never executable; the function's bytes
//! are restored at the end; usage errors have their exit codes. Then the
//! same exact count for two functions of a PIE executable whose entries the
//! trampoline must relocate: a short branch inside the patched bytes, and
//! a RIP-relative load. One boot.

mod common;

use common::{assert_clean, assert_no_leaks, document, number, value};

#[test]
fn calls_counts_exactly_what_the_target_counted_and_its_argument_histogram() {
    let guest = common::guest(600);
    let out = common::run_bash(
        &guest,
        r#"
        set -e
        exec 2>&1
        echo clear > /sys/kernel/debug/kmemleak || true
        adapt-call-counter --threads 8 --control /tmp/c.ctl > /tmp/c.out &
        pid=$!
        wait_line /tmp/c.out '^ready'
        adaptctl calls --pid $pid --symbol crc32_z --arg 2 --duration 120s --json --timings \
            > /tmp/calls.json 2> /tmp/calls.err &
        cpid=$!
        for _ in $(seq 300); do
            adaptctl list --pid $pid --json > /tmp/l.json
            [ "$(j /tmp/l.json injections.len)" = 1 ] && break
            sleep 0.2
        done
        echo '--- BEGIN list ---'; cat /tmp/l.json; echo '--- END list ---'
        daddr=$(j /tmp/l.json injections.0.data_addr)
        echo "data_map=$(grep "^$(printf '%x' "$daddr")-" /proc/$pid/maps | awk '{print $2}')"
        taddr=$(j /tmp/l.json injections.0.target)
        echo "during=$(peek $pid $taddr 5)"
        echo "run 2500" > /tmp/c.ctl
        wait_line /tmp/c.out '^done'
        kill -INT $cpid
        wait $cpid && rc=0 || rc=$?
        echo "calls_rc=$rc"
        cat /tmp/calls.err
        echo '--- BEGIN calls ---'; cat /tmp/calls.json; echo '--- END calls ---'
        echo "target_done=$(grep '^done' /tmp/c.out)"
        echo "after=$(peek $pid $taddr 5)"
        adaptctl list --pid $pid --json > /tmp/l2.json
        echo "live_after=$(j /tmp/l2.json injections.len)"
        # A second round without the counter: nothing counts it.
        echo "run 10" > /tmp/c.ctl
        sleep 1
        adaptctl calls --pid $pid --symbol crc32_z --arg 6 > /dev/null 2>&1 && rc=0 || rc=$?
        echo "bad_arg_rc=$rc"
        adaptctl calls --pid $pid --symbol no_such_function_here --duration 1s > /dev/null 2>&1 && rc=0 || rc=$?
        echo "no_symbol_rc=$rc"
        echo stop > /tmp/c.ctl
        wait $pid && rc=0 || rc=$?
        echo "target_rc=$rc"
        grep '^calls=' /tmp/c.out | sed 's/^/target_final: /'

        # Functions of a PIE executable whose entries the relocator must
        # rewrite: a short branch in the patched bytes, a RIP-relative load.
        for t in exe-branch exe-riprel; do
            sym=adapt_probe_crc_${t#exe-}
            adapt-call-counter --threads 4 --target $t --control /tmp/$t.ctl > /tmp/$t.out &
            p=$!
            wait_line /tmp/$t.out '^ready'
            adaptctl calls --pid $p --symbol $sym --duration 120s --json > /tmp/$t.json 2> /tmp/$t.err &
            c=$!
            for _ in $(seq 300); do
                adaptctl list --pid $p --json > /tmp/l.json
                [ "$(j /tmp/l.json injections.len)" = 1 ] && break
                sleep 0.2
            done
            echo "run 1000" > /tmp/$t.ctl
            wait_line /tmp/$t.out '^done'
            kill -INT $c
            wait $c && rc=0 || rc=$?
            echo "$t-rc=$rc"
            cat /tmp/$t.err
            echo "$t-counted=$(j /tmp/$t.json calls)"
            echo "$t-own=$(grep '^done' /tmp/$t.out)"
            echo stop > /tmp/$t.ctl
            wait $p && rc=0 || rc=$?
            echo "$t-exit=$rc"
        done

        # profile --calls on a busy 8-thread target: the counted window lies
        # inside the target's own count between two `stats`.
        adapt-crc-stress --threads 8 --target libz-z --max-len 512 --control /tmp/s.ctl > /tmp/s.out &
        spid=$!
        wait_line /tmp/s.out '^ready'
        echo stats > /tmp/s.ctl
        wait_line /tmp/s.out '^stats'
        t0=$(date +%s%N)
        adaptctl profile --pid $spid --duration 3s --calls --json > /tmp/prof.json
        echo "profile_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
        echo stats > /tmp/s.ctl
        sleep 1
        echo "stats_lines=$(grep '^stats' /tmp/s.out | sed -E 's/.*calls=([0-9]+).*/\1/' | tr '\n' ' ')"
        echo '--- BEGIN profile ---'; cat /tmp/prof.json; echo '--- END profile ---'
        adaptctl profile --pid $spid --duration 2s --calls 1 | tail -4
        echo "live_after_profile=$(adaptctl list --pid $spid --json > /tmp/l3.json; j /tmp/l3.json injections.len)"
        kill -TERM $spid
        wait $spid && rc=0 || rc=$?
        echo "stress_rc=$rc"
        kmemleak_count
        "#,
    );
    assert_clean(&out);
    let list = document(&out, "list");
    let injection = &list["injections"][0];
    assert_eq!(injection["segment"], "count", "{list}");
    assert_eq!(injection["variant"], "calls-arg2", "{list}");
    assert!(
        injection["data_len"].as_u64().unwrap_or(0) >= 4096,
        "{list}"
    );
    assert_eq!(
        value(&out, "data_map"),
        "rw-p",
        "the data area must be private read+write and never executable:\n{}",
        out.stdout
    );
    assert!(
        value(&out, "during").starts_with("e9"),
        "the entry is not redirected while counting:\n{}",
        out.stdout
    );
    assert_eq!(value(&out, "calls_rc"), "0", "{}", out.stdout);

    // The target's own account: `done calls=N wrong=W hist=B:C,…`.
    let done = value(&out, "target_done");
    let field = |name: &str| -> &str {
        done.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {done}"))
    };
    let own_calls: u64 = field("calls").parse().unwrap();
    assert_eq!(own_calls, 8 * 2500);
    assert_eq!(
        field("wrong"),
        "0",
        "wrong results while counted:\n{}",
        out.stdout
    );
    let counted = document(&out, "calls");
    assert_eq!(
        counted["calls"].as_u64(),
        Some(own_calls),
        "the counter must see exactly the target's calls:\n{counted}"
    );
    let mut own_hist: Vec<(u64, u64)> = field("hist")
        .split(',')
        .map(|bc| {
            let (b, c) = bc.split_once(':').unwrap();
            (b.parse().unwrap(), c.parse().unwrap())
        })
        .collect();
    own_hist.sort();
    let bucket_of = |from: u64| {
        if from == 0 {
            0
        } else {
            64 - u64::from(from.leading_zeros())
        }
    };
    let mut got_hist: Vec<(u64, u64)> = counted["histogram"]
        .as_array()
        .expect("a histogram")
        .iter()
        .map(|b| {
            (
                bucket_of(b["from"].as_u64().unwrap()),
                b["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    got_hist.sort();
    assert_eq!(got_hist, own_hist, "argument 2's histogram:\n{counted}");

    assert_eq!(
        value(&out, "live_after"),
        "0",
        "the counter was not reverted:\n{}",
        out.stdout
    );
    assert!(
        !value(&out, "after").starts_with("e9"),
        "the entry was not restored:\n{}",
        out.stdout
    );
    assert_eq!(number(&out, "bad_arg_rc"), 2, "{}", out.stdout);
    assert_eq!(number(&out, "no_symbol_rc"), 16, "{}", out.stdout);
    assert_eq!(value(&out, "target_rc"), "0", "{}", out.stdout);
    for t in ["exe-branch", "exe-riprel"] {
        assert_eq!(value(&out, &format!("{t}-rc")), "0", "{}", out.stdout);
        let own = value(&out, &format!("{t}-own"));
        assert!(
            own.starts_with("done calls=4000 wrong=0 "),
            "{t}: the target's own account: {own}\n{}",
            out.stdout
        );
        assert_eq!(
            number(&out, &format!("{t}-counted")),
            4000,
            "{}",
            out.stdout
        );
        assert_eq!(value(&out, &format!("{t}-exit")), "0", "{}", out.stdout);
    }
    let stats: Vec<u64> = value(&out, "stats_lines")
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(stats.len(), 2, "{}", out.stdout);
    let own = stats[1] - stats[0];
    let profile = document(&out, "profile");
    let rates = profile["calls"].as_array().expect("a calls table");
    let crc = rates
        .iter()
        .find(|r| r["function"] == "crc32_z")
        .unwrap_or_else(|| panic!("crc32_z not counted:\n{profile}"));
    let counted = crc["calls"].as_u64().unwrap();
    // The counted 3 s window lies inside the target's own count, and its
    // rate is of the order of the target's average over the whole command
    // (sampling, injecting the counter and the counter itself slow the
    // target; the command's length moves with the host's load, so rates
    // are compared, not totals).
    let profile_ms = number(&out, "profile_ms");
    let average_per_s = own as f64 * 1000.0 / profile_ms.max(1) as f64;
    let counted_per_s = counted as f64 / 3.0;
    assert!(
        counted <= own && counted_per_s >= average_per_s / 4.0,
        "counted {counted} calls ({counted_per_s:.0}/s) in the second of two 3 s windows; the \
         target made {own} during the {profile_ms} ms command ({average_per_s:.0}/s):\n{}",
        out.stdout
    );
    assert!(crc["ns_per_call"].as_f64().unwrap_or(0.0) > 0.0, "{crc}");
    assert_eq!(value(&out, "live_after_profile"), "0", "{}", out.stdout);
    assert_eq!(value(&out, "stress_rc"), "0", "{}", out.stdout);
    assert_no_leaks(&out);
}
