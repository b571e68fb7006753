//! The privilege boundary in a real guest: an unprivileged target (uid
//! 4242) uses a fake `libz.so.1` (right soname, correct `crc32`) whose
//! constructor appends the euid of every process that loads it to a log.
//! `adaptctl bench`, `inject` and `auto --once` then run as root against
//! it. No record may say euid 0: the original is loaded only in an
//! unprivileged measuring child (as the target's uid, or `nobody`), and
//! the output says so and says the file is trusted by name only.
//!
//! Fixtures: `qemu-tests/fixtures/privilege/{fake_libz.c,target.c}`, built
//! with gcc in the guest.

mod common;

use adapt_qemu_tests::GuestOutput;
use common::{assert_clean, document as json, section};
use serde_json::Value;
use std::sync::OnceLock;

const SCRIPT: &str = r#"set -u
F=@FIXTURES@/privilege
mkdir -p /tmp/priv && chmod 0777 /tmp/priv
gcc -O2 -shared -fPIC -Wl,-soname,libz.so.1 -o /tmp/priv/libz.so.1 $F/fake_libz.c || exit 2
gcc -O2 -o /tmp/priv/target $F/target.c /tmp/priv/libz.so.1 -Wl,-rpath,/tmp/priv || exit 2
touch /tmp/priv/euid.log && chmod 0666 /tmp/priv/euid.log
setpriv --reuid=4242 --regid=4242 --clear-groups /tmp/priv/target > /tmp/priv/target.out 2>&1 &
P=$!
for i in $(seq 100); do grep -q '^ready' /tmp/priv/target.out 2>/dev/null && break; sleep 0.1; done
echo '--- BEGIN bench ---'
adaptctl bench crc32 --object /tmp/priv/libz.so.1 --no-cache --rounds 5 --json 2>/tmp/priv/bench.err
echo '--- END bench ---'
cat /tmp/priv/bench.err
echo '--- BEGIN inject ---'
adaptctl inject --pid $P --symbol crc32 --object /tmp/priv/libz.so.1 --json 2>/tmp/priv/inject.err
echo '--- END inject ---'
cat /tmp/priv/inject.err
adaptctl revert --pid $P --all > /dev/null 2>&1
echo '--- BEGIN auto ---'
adaptctl auto --pid $P --once --window 2s --json 2>&1
echo '--- END auto ---'
adaptctl revert --pid $P --all > /dev/null 2>&1
kill -TERM $P; wait $P
echo '--- BEGIN target ---'
cat /tmp/priv/target.out
echo '--- END target ---'
echo '--- BEGIN log ---'
cat /tmp/priv/euid.log
echo '--- END log ---'
"#;

fn run_guest() -> &'static GuestOutput {
    static OUT: OnceLock<GuestOutput> = OnceLock::new();
    OUT.get_or_init(|| {
        let guest = common::guest(600).env("ADAPT_CACHE_DIR", "/tmp/adapt-cache");
        common::run_sh(&guest, SCRIPT)
    })
}

#[test]
fn no_code_of_the_fake_library_runs_as_root() {
    let out = run_guest();
    assert_clean(out);
    let log = section(out, "log");
    println!("euid log:\n{log}");
    let euids: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // The target itself loaded it (and may write its log).
    assert!(euids.contains(&"euid=4242"), "{log}\n{}", out.stdout);
    assert!(
        !euids.contains(&"euid=0"),
        "the fake library's constructor ran as root:\n{log}\n{}",
        out.stdout
    );
    // The target's results stayed right through inject and auto.
    let target = section(out, "target");
    assert!(target.contains(" wrong 0"), "{target}");
}

#[test]
fn bench_measures_the_fake_original_as_nobody_and_trusts_it_by_name_only() {
    let out = run_guest();
    assert_clean(out);
    let b = json(out, "bench");
    let o = &b["original"];
    println!("{o:#}");
    assert_eq!(o["measured_as"], 65534, "{o:#}");
    assert_eq!(o["method"], "dlopen", "{o:#}");
    assert_eq!(o["evidence"]["by_content"], false, "{o:#}");
    assert_eq!(
        o["evidence"]["matched"],
        serde_json::json!(["name"]),
        "{o:#}"
    );
    assert!(
        o["evidence"]["summary"]
            .as_str()
            .unwrap()
            .contains("not trusted by name"),
        "{o:#}"
    );
}

#[test]
fn inject_and_auto_measure_the_original_as_the_targets_user() {
    let out = run_guest();
    assert_clean(out);
    let i = json(out, "inject");
    let o = &i["measurement"]["original"];
    println!("{o:#}");
    assert_eq!(o["measured_as"], 4242, "{i:#}");
    assert!(
        o["opened"].as_str().unwrap().contains("/map_files/"),
        "{o:#}"
    );
    assert_eq!(o["evidence"]["by_content"], false, "{o:#}");
    let auto = section(out, "auto");
    println!("{auto}");
    let decisions = common::decisions(auto);
    let about_original: Vec<&Value> = decisions
        .iter()
        .filter(|d| d["function"] == "crc32" && !d["details"]["original"].is_null())
        .collect();
    assert!(!about_original.is_empty(), "{auto}");
    for d in about_original {
        let s = d["details"]["original"]["sentence"].as_str().unwrap();
        assert!(s.contains("uid 4242") || s.contains("not measured"), "{s}");
        assert!(s.contains("evidence"), "{s}");
    }
}
