//! `adaptctl inject --dry-run` on the host, against this test process
//! itself: the symbol is resolved in the live process, the segment verified,
//! the prologue decoded and the contract decided, without the module. The
//! commands that need the module must say it is not loaded.

mod common;

use common::{adaptctl, dir, json, stderr, NO_DEVICE};
use std::process::Output;
use std::sync::OnceLock;

/// Loads the system libz.so.1 into this process, as a zlib user would.
fn load_libz() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let name = std::ffi::CString::new("libz.so.1").unwrap();
        // SAFETY: dlopen of a system library; the handle is leaked so it
        // stays mapped for every test.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
        assert!(!handle.is_null(), "dlopen libz.so.1");
    });
}

/// A zlib-compatible crc32 inside this executable (bitwise).
///
/// # Safety
///
/// `buf` is null or points to `len` readable bytes.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn adapt_cli_test_crc32(crc: u64, buf: *const u8, len: u32) -> u64 {
    if buf.is_null() {
        return 0;
    }
    // SAFETY: callers pass `len` readable bytes at `buf`.
    let data = unsafe { std::slice::from_raw_parts(buf, len as usize) };
    let mut c = !(crc as u32);
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    u64::from(!c)
}

fn dry_run(extra: &[&str]) -> Output {
    let pid = std::process::id().to_string();
    let mut args = vec![
        "inject",
        "--dry-run",
        "--json",
        "--dir",
        dir(),
        "--pid",
        &pid,
    ];
    args.extend_from_slice(extra);
    adaptctl(&args)
}

#[test]
fn zlib_crc32_in_a_live_process_is_planned_with_its_declared_contract() {
    load_libz();
    let out = dry_run(&["--symbol", "crc32"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["segment"], "crc32");
    assert_eq!(plan["function"], "crc32");
    assert_eq!(plan["entry"], 0);
    let symbol = &plan["target"]["symbol"];
    assert_eq!(symbol["object"]["kind"], "shared-library");
    assert_eq!(symbol["object"]["soname"], "libz.so.1");
    assert_eq!(
        plan["target"]["patch"]["patch_len"], 7,
        "mov edx,edx; jmp crc32_z@plt"
    );
    assert_eq!(plan["contract"]["source"], "declared");
    assert_eq!(
        plan["contract"]["signature"],
        "adapt-contract-v1:u64(u64,const u8*,u32)"
    );
    assert!(plan["variant_id"].is_null() && plan["injection"].is_null());
    // The best variant for this CPU, which must be able to run it.
    let variant = plan["variant"].as_str().unwrap();
    assert!(
        ["avx512-vpclmul", "pclmul", "portable"].contains(&variant),
        "{variant}"
    );
}

#[test]
fn a_function_in_the_executable_needs_an_assumed_contract() {
    // SAFETY: nine readable bytes of a string literal.
    let check = unsafe { adapt_cli_test_crc32(0, b"123456789".as_ptr(), 9) };
    assert_eq!(check, 0xcbf4_3926);
    let base = [
        "--symbol",
        "adapt_cli_test_crc32",
        "--segment",
        "crc32",
        "--function",
        "crc32",
    ];
    let out = dry_run(&base);
    assert_eq!(out.status.code(), Some(15), "{}", stderr(&out));
    let err = json(&out);
    assert_eq!(err["error"]["kind"], "contract-unknown");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("--assume-contract 'u64(u64,const u8*,u32)'"),
        "{msg}"
    );

    let mut assumed = base.to_vec();
    assumed.extend(["--assume-contract", "u64(u64, const u8*, u32)"]);
    let out = dry_run(&assumed);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    assert_eq!(plan["contract"]["source"], "assumed");
    assert_eq!(plan["target"]["symbol"]["object"]["kind"], "executable");
    let address = plan["target"]["symbol"]["address"].as_u64().unwrap();
    assert_eq!(address, adapt_cli_test_crc32 as *const () as u64);

    let mut wrong = base.to_vec();
    wrong.extend(["--assume-contract", "u32(u32,const u8*,u64)"]);
    let out = dry_run(&wrong);
    assert_eq!(out.status.code(), Some(15), "{}", stderr(&out));
    assert_eq!(json(&out)["error"]["kind"], "contract-mismatch");
}

#[test]
fn bad_targets_get_their_own_errors_and_exit_codes() {
    load_libz();
    let out = dry_run(&["--symbol", "no_such_function_anywhere"]);
    assert_eq!(
        out.status.code(),
        Some(12),
        "no segment replaces it: {}",
        stderr(&out)
    );
    let out = dry_run(&[
        "--symbol",
        "no_such_function_anywhere",
        "--segment",
        "crc32",
        "--function",
        "crc32",
    ]);
    assert_eq!(out.status.code(), Some(16), "{}", stderr(&out));
    assert_eq!(json(&out)["error"]["kind"], "no-such-symbol");
    let out = dry_run(&["--symbol", "crc32", "--object", "libnothing.so.3"]);
    assert_eq!(out.status.code(), Some(16), "{}", stderr(&out));
    let out = dry_run(&["--symbol", "crc32", "--variant", "no-such-variant"]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    let out = dry_run(&[
        "--symbol",
        "crc32",
        "--segment",
        "crc32",
        "--function",
        "adler32",
    ]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));

    let out = adaptctl(&[
        "inject",
        "--dry-run",
        "--dir",
        dir(),
        "--pid",
        "999999999",
        "--symbol",
        "crc32",
    ]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no process with pid 999999999"),
        "{}",
        stderr(&out)
    );
    let out = adaptctl(&[
        "inject",
        "--dry-run",
        "--dir",
        dir(),
        "--pid",
        "2",
        "--symbol",
        "crc32",
    ]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(stderr(&out).contains("kernel thread"), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().count(),
        1,
        "one line: {}",
        stderr(&out)
    );
}

#[test]
fn without_the_module_inject_revert_list_and_policy_say_so() {
    let pid = std::process::id().to_string();
    for args in [
        vec!["inject", "--pid", &pid, "--symbol", "crc32"],
        vec!["revert", "--id", "1"],
        vec!["revert", "--pid", &pid, "--all"],
        vec!["list"],
        vec!["policy", "show"],
        vec!["policy", "set", "--disable"],
    ] {
        let mut full = vec!["--device", NO_DEVICE];
        full.extend(args.iter());
        let out = adaptctl(&full);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("insmod"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn usage_errors() {
    // revert needs one of --id, --symbol, --all; --symbol needs --pid.
    assert_eq!(adaptctl(&["revert"]).status.code(), Some(2));
    assert_eq!(
        adaptctl(&["revert", "--symbol", "crc32"]).status.code(),
        Some(2)
    );
    assert_eq!(
        adaptctl(&["revert", "--pid", "1", "--id", "3", "--all"])
            .status
            .code(),
        Some(2)
    );
    // policy set needs a setting; --enable and --disable conflict.
    assert_eq!(adaptctl(&["policy", "set"]).status.code(), Some(2));
    assert_eq!(
        adaptctl(&["policy", "set", "--enable", "--disable"])
            .status
            .code(),
        Some(2)
    );
    // A malformed signature is a usage error.
    let out = dry_run(&[
        "--symbol",
        "adapt_cli_test_crc32",
        "--segment",
        "crc32",
        "--function",
        "crc32",
        "--assume-contract",
        "int(x)",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Loads the reference BLAS (Debian's libblas3) into this process, if the
/// machine has it.
fn load_reference_blas() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let name = std::ffi::CString::new("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3").unwrap();
        // SAFETY: dlopen of a system library; the handle is leaked so it
        // stays mapped for every test.
        !unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) }.is_null()
    })
}

fn dry_run_without_module(extra: &[&str]) -> Output {
    let pid = std::process::id().to_string();
    let mut args = vec![
        "--device",
        NO_DEVICE,
        "inject",
        "--dry-run",
        "--json",
        "--dir",
        dir(),
        "--pid",
        &pid,
    ];
    args.extend_from_slice(extra);
    adaptctl(&args)
}

#[test]
fn a_float_reassociate_segment_needs_the_policy_or_the_flag() {
    // Refused before the target is even looked at: no BLAS needed.
    let out = dry_run_without_module(&["--symbol", "dgemm_", "--segment", "dgemm-relaxed"]);
    assert_eq!(out.status.code(), Some(14), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["error"]["kind"], "float-reassociate-not-allowed");
    let msg = doc["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("allow_float_reassociate") && msg.contains("--allow-float-reassociate"),
        "{msg}"
    );

    if !load_reference_blas() {
        eprintln!("SKIPPED: no reference BLAS (libblas3) to plan dgemm_ in");
        return;
    }
    // Without --segment, the exact segment is chosen.
    let out = dry_run_without_module(&["--symbol", "dgemm_"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    assert_eq!(plan["segment"], "dgemm");
    assert_eq!(plan["numerics"], "exact");
    // The flag overrides the policy for this injection.
    let out = dry_run_without_module(&[
        "--symbol",
        "dgemm_",
        "--segment",
        "dgemm-relaxed",
        "--allow-float-reassociate",
    ]);
    if json(&out)["error"]["kind"] == "unsupported-variant" {
        eprintln!("SKIPPED: this CPU runs no dgemm-relaxed variant (AVX2+FMA or AVX-512)");
        return;
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    assert_eq!(plan["segment"], "dgemm-relaxed");
    assert_eq!(plan["numerics"], "float-reassociate");
}
