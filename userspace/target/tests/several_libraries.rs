//! A name that several loaded libraries define.
//!
//! This test loads two extra copies of libz into its process. It lives in
//! its own test binary (its own process) so that those copies never meet
//! the unit tests, which resolve `crc32` in the one system libz.

use adapt_target::{resolve_symbol, ResolveError};

/// Loads a copy of the system libz from `path` with `RTLD_LOCAL`; the handle
/// is never closed, so the mapping stays for the rest of the process.
fn load_copy(path: &std::path::Path) {
    std::fs::copy("/lib/x86_64-linux-gnu/libz.so.1", path).unwrap();
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: dlopen of a library by path; zlib's initializers only set up
    // its own state, and RTLD_LOCAL keeps its symbols out of the global
    // scope the rest of the process binds against.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {}", path.display());
}

#[test]
fn a_name_two_libraries_define_is_refused_until_one_is_named_by_path() {
    let me = std::process::id();
    let dir = std::env::temp_dir().join(format!("adapt-several-libraries-{me}"));
    let mut copies = Vec::new();
    for sub in ["a", "b"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        let copy = d.join("libz.so.1");
        load_copy(&copy);
        copies.push(copy.to_str().unwrap().to_owned());
    }

    // Without --object: refused, and every copy is listed by path.
    let err = resolve_symbol(me, "crc32", None).unwrap_err();
    assert!(
        matches!(err, ResolveError::InSeveralLibraries { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("--object"), "{text}");
    for copy in &copies {
        assert!(text.contains(copy.as_str()), "{copy} missing from: {text}");
    }

    // The soname both copies share still names both: refused the same way.
    let err = resolve_symbol(me, "crc32", Some("libz.so.1")).unwrap_err();
    assert!(
        matches!(err, ResolveError::InSeveralLibraries { .. }),
        "{err}"
    );

    // A path names exactly one, and that one is resolved.
    let mut addresses = Vec::new();
    for copy in &copies {
        let r = resolve_symbol(me, "crc32", Some(copy)).unwrap();
        assert_eq!(&r.symbol.object.path, copy);
        addresses.push(r.symbol.address);
    }
    assert_ne!(addresses[0], addresses[1], "two copies, two addresses");
    std::fs::remove_dir_all(&dir).unwrap();
}
