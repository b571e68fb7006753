//! The optimization library in a real guest: hostile LIBRARY_* ioctls get
//! the promised errno, `adaptctl library load/list/unload` move every
//! variant this CPU supports in and out of the module, and nothing leaks.
//!
//! The library itself is built on the host (by the `adaptctl` that
//! `cargo vm build` produced) into the target directory, which the guest
//! sees read-only, and named to the guest with `$ADAPT_LIBRARY`. The runner
//! fails a run whose console shows a WARN, BUG, oops or lockdep report, so
//! each test also proves "no warning".

mod common;

use adapt_qemu_tests::{Guest, GuestOutput};
use common::{assert_clean, assert_no_leaks, document};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The library built on the host for the guests (once per test binary).
fn library_dir(guest: &Guest) -> &'static str {
    static DIR: OnceLock<String> = OnceLock::new();
    DIR.get_or_init(|| {
        let a = guest.artifacts();
        let dir: PathBuf = a.target_dir.join("adapt-library-tests").join("qemu-guest");
        // The developer's builder (the shipped adaptctl has none).
        let out = Command::new(a.debug_bin_dir.join("build-library"))
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("run build-library on the host");
        assert!(
            out.status.success(),
            "build-library failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.to_string_lossy().into_owned()
    })
}

fn guest(script: &str) -> GuestOutput {
    let guest = common::guest(900);
    let dir = library_dir(&guest);
    common::run_sh(&guest.env("ADAPT_LIBRARY", dir), script)
}

fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {v}"))
}

/// `(segment, variant)` of every disk variant of a `library list` document
/// whose `field` satisfies `keep`.
fn disk_variants(list: &Value, keep: impl Fn(&Value) -> bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in array(&list["library"]["segments"], "segments") {
        for v in array(&s["variants"], "variants") {
            if keep(v) {
                out.push((
                    s["name"].as_str().unwrap().to_owned(),
                    v["name"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn names(entries: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["segment"].as_str().unwrap().to_owned(),
                e["variant"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn hostile_library_ioctls_get_the_promised_errno() {
    let out = guest("adapt-library-abuse /dev/adapt");
    assert_clean(&out);
    assert!(out.stdout.contains(" 0 failed"), "{}", out.stdout);
}

#[test]
fn load_list_reload_unload_every_supported_variant_without_leaks() {
    let out = guest(
        r#"set -e
        echo clear > /sys/kernel/debug/kmemleak
        adaptctl library verify
        echo '--- BEGIN load ---'; adaptctl library load --all --json; echo '--- END load ---'
        echo '--- BEGIN list ---'; adaptctl library list --json; echo '--- END list ---'
        adaptctl library list
        echo '--- BEGIN again ---'; adaptctl library load --all --json; echo '--- END again ---'
        adaptctl library unload --all
        echo '--- BEGIN empty ---'; adaptctl library list --json; echo '--- END empty ---'
        rmmod adapt
        kmemleak_count
        echo done"#,
    );
    assert_clean(&out);
    let list = document(&out, "list");
    assert_eq!(list["module"]["loaded"], true, "{list}");
    let supported = disk_variants(&list, |v| v["supported"] == true);
    let unsupported = disk_variants(&list, |v| v["supported"] == false);
    assert!(
        supported.len() >= 6,
        "at least the portable variants: {supported:?}"
    );

    // Every supported variant was uploaded, the others skipped.
    let load = document(&out, "load");
    let loaded = array(&load["loaded"], "loaded");
    assert_eq!(names(loaded), supported);
    assert!(
        loaded.iter().all(|l| l["already_loaded"] == false),
        "{load}"
    );
    assert_eq!(names(array(&load["skipped"], "skipped")), unsupported);

    // The module lists exactly those, unused and healthy, under the ids the
    // load reported; the disk listing matches them by hash.
    let module = array(&list["module"]["variants"], "module variants");
    assert_eq!(names(module), supported);
    for m in module {
        assert_eq!(m["users"], 0, "{m}");
        assert_eq!(m["quarantined"], false, "{m}");
        let l = loaded
            .iter()
            .find(|l| l["segment"] == m["segment"] && l["variant"] == m["variant"])
            .unwrap();
        assert_eq!(l["id"], m["id"]);
        assert_eq!(l["hash"], m["hash"]);
    }
    assert_eq!(
        disk_variants(&list, |v| !v["loaded_id"].is_null()),
        supported
    );

    // Loading again uploads nothing and names the same ids.
    let again = document(&out, "again");
    let again_loaded = array(&again["loaded"], "loaded");
    assert_eq!(names(again_loaded), supported);
    for a in again_loaded {
        assert_eq!(a["already_loaded"], true, "{a}");
        let first = loaded
            .iter()
            .find(|l| l["segment"] == a["segment"] && l["variant"] == a["variant"])
            .unwrap();
        assert_eq!(a["id"], first["id"]);
    }

    let empty = document(&out, "empty");
    assert_eq!(
        array(&empty["module"]["variants"], "module variants").len(),
        0,
        "{empty}"
    );
    assert_no_leaks(&out);
    assert!(out.stdout.contains("done"));
}

#[test]
fn unload_by_name_and_id_and_errors_name_their_cause() {
    let out = guest(
        r#"
        adaptctl library load crc32 --variant portable --json > /tmp/one.json; echo "one=$?"
        id=$(sed -n 's/.*"id": \([0-9]*\).*/\1/p' /tmp/one.json)
        echo "id=$id"
        adaptctl library unload "$id"; echo "unload-id=$?"
        adaptctl library unload "$id"; echo "unload-again=$?"
        adaptctl library unload 987654; echo "unknown=$?"
        adaptctl library load crc32 adler32; echo "two=$?"
        adaptctl library unload crc32 adler32/portable; echo "unload-names=$?"
        adaptctl library unload crc32; echo "unload-gone=$?"
        adaptctl library load nosuch; echo "nosuch=$?"
        adaptctl library load crc32 --variant nosuch; echo "novariant=$?"
        adaptctl library load --all --all-variants --json > /tmp/all.json; echo "all-variants=$?"
        echo "uploaded=$(grep -c '"already_loaded": false' /tmp/all.json)"
        adaptctl library list
        setpriv --reuid=65534 --regid=65534 --clear-groups adaptctl library unload --all; echo "nonroot=$?"
        adaptctl library unload --all --json; echo "unload-all=$?"
        adaptctl library unload --all; echo "unload-none=$?"
        "#,
    );
    assert_clean(&out);
    let s = &out.stdout;
    assert!(s.contains("one=0"), "{s}");
    assert!(s.contains("unload-id=0") && s.contains(": unloaded"), "{s}");
    assert!(
        s.contains("unload-again=12") && s.contains("unknown=12"),
        "{s}"
    );
    assert!(s.contains("two=0") && s.contains("unload-names=0"), "{s}");
    assert!(
        s.contains("unload-gone=12") && s.contains("no loaded variant matches \"crc32\""),
        "{s}"
    );
    assert!(
        s.contains("nosuch=12") && s.contains("no segment named nosuch"),
        "{s}"
    );
    assert!(
        s.contains("novariant=12") && s.contains("has no variant nosuch"),
        "{s}"
    );
    assert!(s.contains("all-variants=0"), "{s}");
    // Every variant of every segment, supported or not (crc32's remaining
    // variants and adler32's non-portable ones were still loaded: they are
    // reported as already loaded).
    let uploaded = common::number(&out, "uploaded");
    assert!(uploaded >= 10, "{s}");
    assert!(
        s.contains("nonroot=5") && s.contains("permission denied"),
        "{s}"
    );
    assert!(
        s.contains("unload-all=0") && s.contains("unload-none=0"),
        "{s}"
    );
    assert!(s.contains("nothing to unload"), "{s}");
}
