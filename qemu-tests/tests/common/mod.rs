//! What the guest integration tests share: a guest from what `cargo vm
//! build` made, scripts run in it with the same shell helpers and paths,
//! the assertion that a run was clean, and readers of what a script printed
//! (`name=value` lines, `--- BEGIN name ---` sections, JSON-lines
//! decisions). The runner's own API ([`Guest`], [`GuestOutput::value`],
//! [`GuestOutput::section`], [`GuestOutput::report`]) lives in
//! `adapt_qemu_tests`; this module adds the test-side panics.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use adapt_qemu_tests::{Guest, GuestOutput};
use serde_json::Value;

/// Shell functions defined before every script (POSIX sh; bash too).
///
/// - `wait_line FILE REGEX`: waits (60 s at most) for a matching line.
/// - `j FILE KEY.PATH`: one value of a JSON document.
/// - `peek PID ADDR LEN`: hex bytes of a process's memory.
/// - `kmemleak_count`: waits until objects left since `echo clear >
///   /sys/kernel/debug/kmemleak` are old enough to report (5 s), scans
///   twice, prints `kmemleak=N` (check it with [`assert_no_leaks`]).
pub const SHELL_HELPERS: &str = r#"
wait_line() {
    for _ in $(seq 600); do grep -qE "$2" "$1" && return 0; sleep 0.1; done
    echo "timed out waiting for /$2/ in $1:"; cat "$1"; return 1
}
j() { adapt-inject-tool json "$@"; }
peek() { adapt-inject-tool peek "$@"; }
kmemleak_count() {
    sleep 6
    echo scan > /sys/kernel/debug/kmemleak
    echo scan > /sys/kernel/debug/kmemleak
    echo "kmemleak=$(grep -c 'unreferenced object' /sys/kernel/debug/kmemleak || true)"
}
"#;

/// A guest booting what `cargo vm build` made, killed after `secs`.
pub fn guest(secs: u64) -> Guest {
    Guest::new()
        .expect("guest artifacts (run `cargo vm build` first)")
        .timeout(Duration::from_secs(secs))
}

/// Runs `script` with `sh -c` in `guest`, after [`SHELL_HELPERS`] and with
/// the paths of [`expand`] filled in.
pub fn run_sh(guest: &Guest, script: &str) -> GuestOutput {
    run_in(guest, "sh", script)
}

/// [`run_sh`] with bash.
pub fn run_bash(guest: &Guest, script: &str) -> GuestOutput {
    run_in(guest, "bash", script)
}

fn run_in(guest: &Guest, shell: &str, script: &str) -> GuestOutput {
    let script = format!("{SHELL_HELPERS}\n{}", expand(guest, script));
    guest.run(&[shell, "-c", &script]).expect("boot the guest")
}

/// `script` with `@WORKLOADS@` and `@FIXTURES@` replaced by this package's
/// `workloads` and `fixtures` directories, and `@TARGET@` by the cargo
/// target directory (all visible in the guest at the same paths).
pub fn expand(guest: &Guest, script: &str) -> String {
    script
        .replace(
            "@WORKLOADS@",
            concat!(env!("CARGO_MANIFEST_DIR"), "/workloads"),
        )
        .replace(
            "@FIXTURES@",
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"),
        )
        .replace(
            "@TARGET@",
            &guest.artifacts().target_dir.display().to_string(),
        )
}

/// Asserts the command ran to its end and exited 0: no kernel problem
/// (WARN, BUG, oops, lockdep, kmemleak report), no timeout, no setup error.
pub fn assert_clean(out: &GuestOutput) {
    assert!(
        out.failure().is_none() && out.status == 0,
        "{}\n--- full output ---\n{}",
        out.report(),
        out.stdout
    );
}

/// The value of the last `name=value` line; panics with the output when
/// there is none.
pub fn value<'a>(out: &'a GuestOutput, name: &str) -> &'a str {
    out.value(name)
        .unwrap_or_else(|| panic!("no {name}= in:\n{}", out.stdout))
}

/// [`value`], parsed as a number.
pub fn number(out: &GuestOutput, name: &str) -> u64 {
    let text = value(out, name);
    text.parse()
        .unwrap_or_else(|e| panic!("{name}={text} is not a number ({e}):\n{}", out.stdout))
}

/// The text between `--- BEGIN name ---` and `--- END name ---`; panics
/// with the output when there is none.
pub fn section<'a>(out: &'a GuestOutput, name: &str) -> &'a str {
    out.section(name)
        .unwrap_or_else(|| panic!("no section {name} in:\n{}", out.stdout))
}

/// The JSON document of [`section`] `name`.
pub fn document(out: &GuestOutput, name: &str) -> Value {
    let text = section(out, name);
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} is not JSON ({e}):\n{text}"))
}

/// The JSON-lines decisions (`{"kind": …}`) of `adaptctl auto --json` in
/// `text`.
pub fn decisions(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{') && l.contains("\"kind\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Asserts the `kmemleak=N` of [`SHELL_HELPERS`]' `kmemleak_count` is 0.
pub fn assert_no_leaks(out: &GuestOutput) {
    assert_eq!(
        value(out, "kmemleak"),
        "0",
        "leaks reported:\n{}",
        out.stdout
    );
}

/// The median of throughput figures (panics when there are none).
pub fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty(), "no throughput figures");
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// What `adaptctl auto` must leave behind after its verdict on one
/// function (`kind`: "kept" or "reverted"), given the number of live
/// injections `list` showed afterwards and the program's throughput before
/// and after. A reverted injection leaves the original code: nothing of
/// adapt stays live, and the throughput after it shows only TCG's drift on
/// a loaded host (seen: 278 → 174 MB/s with the original restored while the
/// host's other core compiled), so it is not judged. A kept injection stays
/// live and must not leave the program grossly slower: the verdict's
/// interval is the precise claim, and TCG drifts by 20 % and more between
/// two stretches with nothing changed, hence the 0.75 floor.
pub fn assert_left_never_slower(
    name: &str,
    kind: &str,
    live: &str,
    before: f64,
    after: f64,
    out: &GuestOutput,
) {
    if kind == "kept" {
        assert_eq!(live, "1", "{name}: kept, so live:\n{}", out.stdout);
        assert!(
            after >= 0.75 * before,
            "{name}: the program ended slower with the kept injection \
             ({before:.1} → {after:.1}):\n{}",
            out.stdout
        );
    } else {
        assert_eq!(
            live, "0",
            "{name}: reverted, yet an injection is live:\n{}",
            out.stdout
        );
    }
}
