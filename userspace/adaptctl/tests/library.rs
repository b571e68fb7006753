//! `adaptctl library …` on the host, against the real library built by
//! the segment builder (once per test binary). The adapt module is
//! never loaded here: commands that need it must say so.

mod common;

use adapt_segment::{Segment, Variant};
use common::{adaptctl, dir, json, library, stderr, stdout, NO_DEVICE};
use serde_json::Value;

#[test]
fn list_shows_the_disk_library_and_says_the_module_is_not_loaded() {
    let out = adaptctl(&[
        "--device",
        NO_DEVICE,
        "library",
        "list",
        "--dir",
        dir(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["module"]["loaded"], false);
    assert!(doc["module"]["message"]
        .as_str()
        .unwrap()
        .contains("not loaded"));
    assert_eq!(doc["module"]["variants"].as_array().unwrap().len(), 0);
    let segments = doc["library"]["segments"].as_array().unwrap();
    // Every segment of the catalog, those with imports (format 2) too.
    assert_eq!(
        segments.len(),
        adapt_library_build::catalog::catalog().len(),
        "{doc}"
    );
    assert_eq!(
        doc["library"]["unreadable"].as_array().unwrap().len(),
        0,
        "{doc}"
    );
    for s in segments {
        let variants = s["variants"].as_array().unwrap();
        assert!(!variants.is_empty());
        // The best variant is the first supported one, and portable code
        // runs everywhere.
        let first_supported = variants
            .iter()
            .find(|v| v["supported"] == true)
            .map(|v| v["name"].clone());
        assert_eq!(
            s["best_variant"],
            first_supported.unwrap_or(Value::Null),
            "{s}"
        );
        // Every exact segment has portable code; a relaxed one (fused
        // multiply-adds: dgemm-relaxed) exists only for FMA hardware.
        let relaxed = s["name"].as_str().unwrap().ends_with("-relaxed");
        assert_eq!(
            s["numerics"],
            if relaxed {
                "float-reassociate"
            } else {
                "exact"
            },
            "{s}"
        );
        if !relaxed {
            let portable = variants
                .iter()
                .find(|v| v["name"] == "portable")
                .expect("portable variant");
            assert_eq!(portable["supported"], true);
            assert_eq!(portable["features"].as_array().unwrap().len(), 0);
        }
        for v in variants {
            assert_eq!(v["hash"].as_str().unwrap().len(), 64, "{v}");
            assert_eq!(v["upload_error"], Value::Null);
            assert_eq!(v["loaded_id"], Value::Null);
        }
    }
    let crc32 = segments.iter().find(|s| s["name"] == "crc32").unwrap();
    assert_eq!(crc32["functions"], serde_json::json!(["crc32", "crc32_z"]));

    let out = adaptctl(&["--device", NO_DEVICE, "library", "list", "--dir", dir()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("module: not loaded") && text.contains("insmod"),
        "{text}"
    );
    assert!(
        text.contains("crc32_z")
            && text.contains("portable")
            && text.contains("numerics float-reassociate (not bit-identical, opt-in"),
        "{text}"
    );
}

#[test]
fn show_gives_contracts_hashes_and_the_best_variant() {
    let out = adaptctl(&["library", "show", "crc32", "--dir", dir(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["name"], "crc32");
    let functions = doc["functions"].as_array().unwrap();
    assert_eq!(functions[0]["symbol"], "crc32");
    assert_eq!(
        functions[0]["contract_signature"],
        "adapt-contract-v1:u64(u64,const u8*,u32)"
    );
    assert_eq!(functions[1]["symbol"], "crc32_z");
    assert_eq!(
        functions[1]["contract_signature"],
        "adapt-contract-v1:u64(u64,const u8*,u64)"
    );
    assert_eq!(
        functions[0]["declaration"],
        "uLong crc32(uLong crc, const Bytef *buf, uInt len)"
    );
    for f in functions {
        assert_eq!(f["contract_hash"].as_str().unwrap().len(), 16);
    }
    assert_ne!(functions[0]["contract_hash"], functions[1]["contract_hash"]);
    let variants = doc["variants"].as_array().unwrap();
    let names: Vec<&str> = variants
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["avx512-vpclmul", "pclmul", "portable"]);
    for v in variants {
        // The uploaded bits are exactly the listed features.
        let bits = v["cpu_feature_bits"].as_u64().unwrap();
        let mut from_names = 0u64;
        for f in v["features"].as_array().unwrap() {
            from_names |=
                adapt_abi::cpu_feature_bit(f.as_str().unwrap()).expect("feature has a bit");
        }
        assert_eq!(bits, from_names, "{v}");
        assert!(v["code_bytes"].as_u64().unwrap() > 0);
        assert_eq!(v["hash"].as_str().unwrap().len(), 64);
    }
    let best = variants.iter().find(|v| v["supported"] == true).unwrap();
    assert_eq!(doc["best_variant"], best["name"]);

    let out = adaptctl(&["library", "show", "crc32", "--dir", dir()]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("adapt-contract-v1:u64(u64,const u8*,u32)"),
        "{text}"
    );
    assert!(text.contains("this CPU would use"), "{text}");
}

#[test]
fn show_of_an_unknown_segment_is_not_found() {
    let out = adaptctl(&["library", "show", "nosuch", "--dir", dir()]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no segment named nosuch"),
        "{}",
        stderr(&out)
    );
    let out = adaptctl(&[
        "library",
        "show",
        "crc32",
        "--dir",
        "/nonexistent/library",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(12));
    assert_eq!(json(&out)["error"]["kind"], "no-library");
}

#[test]
fn verify_accepts_the_built_library() {
    let out = adaptctl(&["library", "verify", "--dir", dir(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let doc = json(&out);
    assert_eq!(doc["refused"], 0);
    let segments = doc["segments"].as_array().unwrap();
    assert_eq!(
        segments.len(),
        adapt_library_build::catalog::catalog().len()
    );
    for s in segments {
        assert_eq!(s["ok"], true, "{s}");
        assert!(!s["variants"].as_array().unwrap().is_empty());
        assert_eq!(s["refusals"].as_array().unwrap().len(), 0);
    }
    let out = adaptctl(&["library", "verify", "crc32", "sha256", "--dir", dir()]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains("crc32: ok") && text.contains("sha256: ok") && !text.contains("adler32"),
        "{text}"
    );
}

/// A library holding a crc32 whose portable variant is `syscall; ret`, and a
/// file that is not a segment at all.
fn bad_library() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut crc32 = Segment::read_file(&library().join("crc32.seg")).unwrap();
    let portable = crc32
        .variants
        .iter()
        .position(|v| v.name == "portable")
        .unwrap();
    crc32.variants[portable] = Variant {
        name: "portable".into(),
        features: Default::default(),
        code: vec![0x0f, 0x05, 0xc3],
        rodata: Vec::new(),
        rodata_align: 1,
        relocations: Vec::new(),
        entry_offsets: vec![0, 0],
    };
    crc32.write_file(&tmp.path().join("crc32.seg")).unwrap();
    std::fs::write(tmp.path().join("garbage.seg"), b"not a segment").unwrap();
    tmp
}

#[test]
fn verify_names_offset_instruction_and_rule_of_each_refusal() {
    let tmp = bad_library();
    let bad = tmp.path().to_str().unwrap();
    let out = adaptctl(&["library", "verify", "crc32", "--dir", bad]);
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("crc32: REFUSED"), "{text}");
    assert!(
        text.contains("variant portable offset 0x0: `syscall` (0f05) breaks rule system-call"),
        "{text}"
    );

    let out = adaptctl(&["library", "verify", "--dir", bad, "--json"]);
    assert_eq!(out.status.code(), Some(10));
    let doc = json(&out);
    assert_eq!(
        doc["refused"], 2,
        "the refused segment and the unreadable file: {doc}"
    );
    let crc32 = doc["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "crc32")
        .unwrap();
    assert_eq!(crc32["ok"], false);
    let refusal = &crc32["refusals"][0];
    assert_eq!(refusal["variant"], "portable");
    assert_eq!(refusal["offset"], 0);
    assert_eq!(refusal["rule"], "system-call");
    assert_eq!(refusal["instruction"], "syscall");
    // The other variants were still verified, and accepted.
    let accepted: Vec<&str> = crc32["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["variant"].as_str().unwrap())
        .collect();
    assert_eq!(accepted, ["avx512-vpclmul", "pclmul"]);
    let garbage = doc["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].is_null())
        .unwrap();
    assert!(garbage["path"].as_str().unwrap().ends_with("garbage.seg"));
    assert!(garbage["error"].as_str().is_some());
}

#[test]
fn load_refuses_a_segment_the_verifier_refuses_before_touching_the_module() {
    let tmp = bad_library();
    let bad = tmp.path().to_str().unwrap();
    let out = adaptctl(&[
        "--device", NO_DEVICE, "library", "load", "crc32", "--dir", bad,
    ]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("nothing was uploaded") && err.contains("system-call"),
        "{err}"
    );
    assert!(
        err.contains("crc32: variant portable: offset 0x0: `syscall`"),
        "{err}"
    );
    let out = adaptctl(&[
        "--device", NO_DEVICE, "library", "load", "crc32", "--dir", bad, "--json",
    ]);
    assert_eq!(out.status.code(), Some(10));
    assert_eq!(json(&out)["error"]["kind"], "refused");
    // An unreadable segment file stops `load --all` too.
    let out = adaptctl(&[
        "--device", NO_DEVICE, "library", "load", "--all", "--dir", bad,
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("garbage.seg"), "{}", stderr(&out));
}

#[test]
fn load_and_unload_without_the_module_say_to_load_it() {
    for args in [
        &["library", "load", "--all"][..],
        &["library", "load", "crc32"],
        &["library", "unload", "--all"],
        &["library", "unload", "1"],
    ] {
        let mut full = vec!["--device", NO_DEVICE];
        full.extend_from_slice(args);
        if args[1] == "load" {
            full.extend_from_slice(&["--dir", dir()]);
        }
        let out = adaptctl(&full);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("not loaded") && err.contains("insmod"),
            "{err}"
        );

        full.push("--json");
        let out = adaptctl(&full);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(json(&out)["error"]["kind"], "module-not-loaded");
    }
}

#[test]
fn building_the_library_is_not_a_command_of_the_shipped_cli() {
    // `build-library` (adapt-library-build, a developer tool) builds it.
    let out = adaptctl(&["library", "build"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn load_and_unload_need_something_to_act_on() {
    let out = adaptctl(&["library", "load"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = adaptctl(&["library", "unload"]);
    assert_eq!(out.status.code(), Some(2));
    let out = adaptctl(&["library", "load", "crc32", "--all"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_library_command_has_teaching_help_and_json() {
    for (command, teaches) in [
        ("list", "users"),
        ("show", "contract"),
        ("verify", "offset"),
        ("load", "already loaded"),
        ("unload", "--force"),
    ] {
        let out = adaptctl(&["library", command, "--help"]);
        assert!(out.status.success(), "{command}");
        let help = stdout(&out);
        assert!(help.contains("--json"), "{command}: {help}");
        assert!(
            help.contains(teaches),
            "{command} help should mention {teaches:?}: {help}"
        );
    }
    let out = adaptctl(&["--help"]);
    let help = stdout(&out);
    assert!(
        help.contains("library") && help.contains("10  the verifier refused"),
        "{help}"
    );
}

#[test]
fn show_says_a_relaxed_segment_is_not_bit_identical() {
    let out = adaptctl(&["library", "show", "dgemm-relaxed", "--dir", dir(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["numerics"], "float-reassociate");
    let out = adaptctl(&["library", "show", "dgemm", "--dir", dir(), "--json"]);
    assert_eq!(json(&out)["numerics"], "exact");
    let out = adaptctl(&["library", "show", "dgemm-relaxed", "--dir", dir()]);
    let text = stdout(&out);
    assert!(
        text.contains("numerics float-reassociate (NOT bit-identical")
            && text.contains("allow_float_reassociate"),
        "{text}"
    );
}

/// `adaptctl bench dgemm` natively (in this test binary, whose library is
/// already built): the exact dgemm variants and the relaxed dgemm-relaxed
/// side by side against Debian's reference BLAS, exact ones 0 ulp, the
/// relaxed one a finite max ulp and not chosen.
#[test]
fn bench_dgemm_shows_exact_and_relaxed_with_max_ulp_against_the_reference_blas() {
    if !std::path::Path::new("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3").exists() {
        eprintln!("SKIPPED: no reference BLAS (apt-get install libblas3)");
        return;
    }
    let args = [
        "bench",
        "dgemm",
        "--dir",
        dir(),
        "--sizes",
        "16,64",
        "--rounds",
        "3",
        "--batch-ms",
        "1",
        "--no-cache",
    ];
    let out = adaptctl(&args);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for needle in [
        "original",
        "GFLOP/s",
        "max ulp",
        "float-reassociate",
        "RELAXED",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let out = adaptctl(&[&args[..], &["--json"]].concat());
    let v = json(&out);
    assert_eq!(v["shape"], "dgemm", "{v}");
    let variants = v["variants"].as_array().unwrap();
    assert!(!variants.is_empty());
    for x in variants {
        assert_eq!(x["correct"], true, "{x}");
        if x["numerics"] == "exact" {
            assert_eq!(x["max_ulp"], 0, "{x}");
        } else {
            assert!(x["variant"].as_str().unwrap().starts_with("dgemm-relaxed:"));
            assert!(x["max_ulp"].is_u64(), "{x}");
            assert!(x["ineligible"].as_str().unwrap().contains("not allowed"));
        }
    }
    let chosen = v["decision"]["choice"]["variant"].as_str().unwrap_or("");
    assert!(!chosen.contains("relaxed"), "{v}");
}
