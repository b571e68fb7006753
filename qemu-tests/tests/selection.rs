//! In-situ selection in a real TCG guest, where emulated SIMD and crypto
//! instructions are slow: `adaptctl bench crc32` against the system
//! libz.so.1 decides consistently with the figures it measured, injecting
//! its choice into an unmodified program linked to libz.so.1 (python3's
//! zlib module) keeps every result correct, and a variant that measured
//! slower is injected only as an override.
//!
//! One guest run serves all three tests. No timing is asserted beyond
//! "the decision follows from the figures of the same run"; the ratios are
//! printed (`cargo test --test selection -- --nocapture`).

mod common;

use adapt_qemu_tests::GuestOutput;
use common::{assert_clean, document as json, section};
use serde_json::Value;
use std::sync::OnceLock;

/// python3 with zlib: crc32 of 64 KiB in a loop, every result checked
/// against the value libz computed before any injection; SIGUSR1 prints
/// the bytes hashed since the previous SIGUSR1.
const WORKLOAD: &str = r#"
import os, signal, time, zlib
buf = bytes((i * 7 + 3) & 0xff for i in range(65536))
want = zlib.crc32(buf)
st = {'n': 0, 'wrong': 0, 't': time.monotonic(), 'stop': False}
def window(sig, frame):
    now = time.monotonic()
    print(f"window {st['n'] * len(buf)} {now - st['t']:.3f} {st['wrong']}", flush=True)
    st['n'] = 0
    st['t'] = now
def stop(sig, frame):
    st['stop'] = True
signal.signal(signal.SIGUSR1, window)
signal.signal(signal.SIGTERM, stop)
print(f"ready {os.getpid()} {want:#x}", flush=True)
while not st['stop']:
    if zlib.crc32(buf) != want:
        st['wrong'] += 1
    st['n'] += 1
print(f"total-wrong {st['wrong']}", flush=True)
"#;

const SCRIPT: &str = r#"set -u
libz=$(for d in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu; do [ -e $d/libz.so.1 ] && echo $d/libz.so.1 && break; done)
adaptctl bench crc32 --object "$libz" --no-cache --json > /tmp/select.json 2>/tmp/select.err
echo '--- BEGIN select ---'
cat /tmp/select.json /tmp/select.err
echo '--- END select ---'
cat > /tmp/w.py <<'PY'
@WORKLOAD@
PY
python3 /tmp/w.py >> /tmp/w.out 2>&1 &
P=$!
for i in $(seq 100); do grep -q '^ready' /tmp/w.out 2>/dev/null && break; sleep 0.2; done
measure() { kill -USR1 $P; sleep 4; kill -USR1 $P; sleep 0.3; echo "$1" >> /tmp/labels; }
measure before
echo '--- BEGIN inject ---'
adaptctl inject --pid $P --symbol crc32 --object libz.so.1 --json 2>/tmp/inject.err
echo "inject-rc $?" > /tmp/inject.rc
echo '--- END inject ---'
cat /tmp/inject.rc /tmp/inject.err
measure inject
adaptctl revert --pid $P --all > /dev/null 2>&1
measure reverted
chosen=$(python3 -c '
import json
print(json.load(open("/tmp/select.json"))["decision"]["choice"].get("variant") or "")
')
echo '--- BEGIN chosen ---'
if [ -n "$chosen" ]; then
  adaptctl inject --pid $P --symbol crc32 --object libz.so.1 --variant "$chosen" --no-measure --json 2>/tmp/chosen.err
  measure chosen
  adaptctl revert --pid $P --all > /dev/null 2>&1
else
  echo "none: the selection chose nothing"
fi
echo '--- END chosen ---'
cat /tmp/chosen.err 2>/dev/null
slow=$(python3 -c '
import json
d = json.load(open("/tmp/select.json"))
chosen = d["decision"]["choice"].get("variant")
slow = [v for v in d["variants"] if v["correct"] and v["ineligible"] and v["variant"] != chosen]
print(min(slow, key=lambda v: v["speedup"])["variant"] if slow else "")
')
echo '--- BEGIN forced ---'
if [ -n "$slow" ]; then
  adaptctl inject --pid $P --symbol crc32 --object libz.so.1 --variant "$slow" --json 2>&1
  measure forced
  adaptctl revert --pid $P --all > /dev/null 2>&1
else
  echo "none: every correct variant is eligible or chosen"
fi
echo '--- END forced ---'
kill -TERM $P; wait $P
echo '--- BEGIN windows ---'
cat /tmp/w.out
echo '--- END windows ---'
echo '--- BEGIN labels ---'
cat /tmp/labels
echo '--- END labels ---'
"#;

fn run_guest() -> &'static GuestOutput {
    static OUT: OnceLock<GuestOutput> = OnceLock::new();
    OUT.get_or_init(|| {
        let guest = common::guest(900).env("ADAPT_CACHE_DIR", "/tmp/adapt-cache");
        common::run_sh(&guest, &SCRIPT.replace("@WORKLOAD@", WORKLOAD.trim()))
    })
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The decision follows from the figures: a chosen variant is correct, at
/// least `1 + margin` faster (geometric mean), no size more than `margin`
/// slower, and no eligible variant is faster; "nothing" means none is
/// eligible.
fn assert_consistent(sel: &Value) {
    let margin = f(&sel["decision"]["margin"]);
    let variants = sel["variants"].as_array().expect("variants");
    let eligible: Vec<&Value> = variants
        .iter()
        .filter(|v| v["correct"] == true && v["ineligible"].is_null())
        .collect();
    let choice = &sel["decision"]["choice"];
    match choice["kind"].as_str() {
        Some("variant") => {
            let name = choice["variant"].as_str().unwrap();
            let chosen = variants
                .iter()
                .find(|v| v["variant"] == name)
                .expect("chosen listed");
            let speedup = f(&chosen["speedup"]);
            assert!(
                speedup >= 1.0 + margin,
                "chosen {name} at {speedup:.3}× is not faster than the original"
            );
            assert!(f(&chosen["worst"]) >= 1.0 - margin, "{chosen}");
            for v in &eligible {
                assert!(
                    f(&v["speedup"]) <= speedup,
                    "{} is faster than the chosen {name}",
                    v["variant"]
                );
            }
            // Per size: the original was measured, and the paired ratio.
            for row in sel["sizes"].as_array().unwrap() {
                assert!(f(&row["original"]["bytes_per_sec"]) > 0.0, "{row}");
                let v = row["variants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["variant"] == name)
                    .unwrap();
                assert!(f(&v["ratio"]) > 0.0, "{row}");
            }
        }
        Some("nothing") => assert!(
            eligible.is_empty(),
            "eligible variants but nothing chosen: {sel}"
        ),
        other => panic!("libz.so.1 must be measurable in the guest, got {other:?}: {sel}"),
    }
}

fn print_ratios(sel: &Value) {
    println!(
        "selection in the TCG guest (emulated figures), crc32 vs {}:",
        sel["original"]["path"]
    );
    for row in sel["sizes"].as_array().unwrap() {
        let mut line = format!(
            "  {:>7} B: libz {:>6.0} MB/s",
            row["size"],
            f(&row["original"]["bytes_per_sec"]) / 1e6
        );
        for v in row["variants"].as_array().unwrap() {
            line += &format!(
                ", {} {:.0} MB/s ({:.2}×)",
                v["variant"].as_str().unwrap(),
                f(&v["figure"]["bytes_per_sec"]) / 1e6,
                f(&v["ratio"])
            );
        }
        println!("{line}");
    }
    for v in sel["variants"].as_array().unwrap() {
        println!(
            "  {}: speedup {:.2}×, worst {:.2}×",
            v["variant"],
            f(&v["speedup"]),
            f(&v["worst"])
        );
    }
    println!("  decision: {}", sel["decision"]["choice"]);
}

/// Throughput of the workload in each labelled window (MB/s: before,
/// inject, reverted, chosen, forced — those that ran), and its count of
/// wrong results.
fn windows(out: &GuestOutput) -> (std::collections::BTreeMap<String, f64>, u64) {
    let text = section(out, "windows");
    let w: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("window "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let bytes: f64 = it.next()?.parse().ok()?;
            let secs: f64 = it.next()?.parse().ok()?;
            Some(bytes / secs / 1e6)
        })
        .collect();
    let wrong = text
        .lines()
        .find_map(|l| l.strip_prefix("total-wrong "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the workload did not finish:\n{text}"));
    // Every second window is a measurement (the others span the commands).
    let labels = section(out, "labels").lines().map(str::to_owned);
    (
        labels.zip(w.into_iter().skip(1).step_by(2)).collect(),
        wrong,
    )
}

#[test]
fn selection_for_crc32_under_tcg_follows_its_own_figures() {
    let out = run_guest();
    assert_clean(out);
    let sel = json(out, "select");
    print_ratios(&sel);
    for v in sel["variants"].as_array().unwrap() {
        assert_eq!(
            v["correct"], true,
            "{} computes something else than libz: {sel}",
            v["variant"]
        );
    }
    assert_consistent(&sel);
    // Portable over pclmul exactly when the measurement says so.
    let speedup = |name: &str| {
        sel["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["variant"] == name)
            .map(|v| f(&v["speedup"]))
    };
    if let (Some(p), Some(c), Some("variant")) = (
        speedup("portable"),
        speedup("pclmul"),
        sel["decision"]["choice"]["kind"].as_str(),
    ) {
        let chosen = sel["decision"]["choice"]["variant"].as_str().unwrap();
        println!("portable {p:.2}×, pclmul {c:.2}× under TCG: chosen {chosen}");
        if chosen == "pclmul" {
            assert!(c >= p, "pclmul chosen although portable measured faster");
        }
    }
}

#[test]
fn injecting_the_selection_into_python_zlib_keeps_every_result_correct() {
    let out = run_guest();
    assert_clean(out);
    let rc: i32 = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("inject-rc "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no inject status:\n{}", out.stdout));
    let doc = json(out, "inject");
    let measured = &doc["measurement"]["decision"];
    if !doc["measurement"].is_null() {
        println!("measured by adaptctl inject while the workload ran:");
        print_ratios(&doc["measurement"]);
    }
    let (w, wrong) = windows(out);
    assert_eq!(
        wrong,
        0,
        "wrong crc32 results in the workload:\n{}",
        section(out, "windows")
    );
    assert!(
        w.contains_key("before") && w.contains_key("inject") && w.contains_key("reverted"),
        "windows: {w:?}"
    );
    match rc {
        0 => {
            let chosen = measured["choice"]["variant"]
                .as_str()
                .or(measured["choice"]["fastest"].as_str());
            assert_eq!(doc["variant"].as_str(), chosen, "{doc}");
            assert!(doc["injection"]["id"].is_u64(), "{doc}");
            println!(
                "python3 zlib.crc32 (64 KiB) in the TCG guest, emulated: libz {:.1} MB/s, {} injected {:.1} MB/s ({:.2}×), reverted {:.1} MB/s",
                w["before"],
                chosen.unwrap_or("?"),
                w["inject"],
                w["inject"] / w["before"],
                w["reverted"]
            );
        }
        18 => {
            assert_eq!(measured["choice"]["kind"], "nothing", "{doc}");
            assert!(doc["injection"].is_null(), "{doc}");
            println!(
                "the measurement at injection time injected nothing: {}",
                measured["choice"]["reason"]
            );
        }
        other => panic!("adaptctl inject exited {other}:\n{}", out.stdout),
    }
    // The variant `adaptctl bench` chose, injected as such (the measurement
    // at injection time ran while the workload shared the guest's CPUs, and
    // may differ): the end-to-end ratio it gives.
    let chosen = section(out, "chosen");
    if !chosen.starts_with("none") {
        let doc: Value = serde_json::from_str(chosen)
            .unwrap_or_else(|e| panic!("chosen is not JSON ({e}):\n{chosen}"));
        assert!(
            doc["injection"]["id"].is_u64(),
            "injecting the bench's choice failed: {doc}"
        );
        println!(
            "python3 zlib.crc32 (64 KiB), emulated: the bench's choice {} injected: {:.1} MB/s, {:.2}× libz before ({:.1} MB/s)",
            doc["variant"],
            w["chosen"],
            w["chosen"] / w["before"],
            w["before"]
        );
    }
}

#[test]
fn a_variant_that_measured_slower_is_injected_only_as_an_override() {
    let out = run_guest();
    assert_clean(out);
    let forced = section(out, "forced");
    if forced.starts_with("none") {
        println!("no variant measured slower than libz in this run: {forced}");
        return;
    }
    let doc: Value = serde_json::from_str(forced)
        .unwrap_or_else(|e| panic!("forced is not JSON ({e}):\n{forced}"));
    let f = &doc["measurement"]["decision"]["forced"];
    let variant = f["variant"].as_str().expect("forced variant");
    assert_eq!(doc["variant"], variant);
    assert!(
        doc["injection"]["id"].is_u64(),
        "the override is injected: {doc}"
    );
    assert!(
        f["rule_says"].is_string(),
        "the rule (adaptctl auto) would have refused it: {doc}"
    );
    assert_ne!(
        doc["measurement"]["decision"]["choice"]["variant"].as_str(),
        Some(variant),
        "the rule alone would not choose it"
    );
    let (w, wrong) = windows(out);
    assert_eq!(wrong, 0);
    println!(
        "forced {variant}: measured {} ({}); python3 zlib.crc32 with it, emulated: {:.2}× libz",
        f["speedup"],
        f["rule_says"],
        w["forced"] / w["before"]
    );
}
