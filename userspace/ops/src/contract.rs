//! Which C contract a target function has, as far as adaptctl can vouch.
//!
//! # The rule
//!
//! A segment declares, for each function it replaces, the symbol, the
//! library that exports it (`library`, a soname such as `libz.so.1`) and
//! its C contract. adaptctl takes that declared contract as the target's
//! only when the target *is* that function: the symbol has the declared
//! name **and** the object it was found in is the declared library (its
//! `DT_SONAME`, its file name, or its file name plus a version:
//! `libz.so.1.2.13` is `libz.so.1`). Anything else — a function inside an
//! executable, a library other than the declared one, another name, or a
//! segment function without a library — has a contract adaptctl cannot
//! know, and needs `--assume-contract SIGNATURE`: the caller states the
//! target's signature, and it must be the segment function's. Either way
//! the hash goes to the module, which compares it with the hash stored for
//! the variant's entry.
//!
//! # Signatures and hashes
//!
//! The signature is the contract signature defined with the library upload
//! (`adapt_client::upload`): `adapt-contract-v1:RET(P1,P2,...)` with
//! `void u8 u16 u32 u64 i32 i64 f32 f64`, `const T*` (read-only pointer)
//! and `T*`; the hash is the first 8 bytes of its sha256, little-endian.
//! `--assume-contract` takes it with or without the prefix and with any
//! spacing (`u64 (u64, const u8 *, u32)`); `(void)` is `()`.
//! This module parses what a user writes into that canonical form; the
//! pinned test below and the module's own comparison (`EPROTO`) catch any
//! divergence from the upload's definition.

use adapt_segment::{Contract, Function};
use adapt_target::ObjectRef;
use serde::Serialize;

/// Prefix and version of the contract signature.
pub const SIGNATURE_PREFIX: &str = adapt_client::upload::CONTRACT_SIGNATURE_PREFIX;

/// Where the target's contract came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContractSource {
    /// The segment declares it for exactly this symbol in this library.
    Declared,
    /// The caller stated it with `--assume-contract`.
    Assumed,
    /// The injected code passes every argument through to the original
    /// untouched (a counting segment): it depends on no contract.
    PassThrough,
}

/// The contract the injection will name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetContract {
    pub signature: String,
    #[serde(serialize_with = "hex_u64")]
    pub hash: u64,
    pub source: ContractSource,
}

fn hex_u64<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:016x}"))
}

/// Why the contract could not be established.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error(
        "adaptctl cannot vouch for the C contract of {target}: segment {segment} declares \
         `{declared}` for {declared_for}, and {why}; if the target really has that signature, pass \
         --assume-contract '{}'",
        declared.trim_start_matches(SIGNATURE_PREFIX)
    )]
    Unknown {
        /// `SYMBOL in OBJECT`.
        target: String,
        segment: String,
        /// `FUNCTION in LIBRARY`.
        declared_for: String,
        declared: String,
        why: String,
    },
    #[error(
        "contract mismatch: --assume-contract says {symbol} is `{assumed}`, but segment \
         {segment}'s {function} implements `{declared}`; nothing was injected"
    )]
    Mismatch {
        symbol: String,
        segment: String,
        function: String,
        assumed: String,
        declared: String,
    },
    #[error(
        "cannot read --assume-contract {given:?}: {why} (expected e.g. 'u64(u64,const u8*,u32)': \
         a return type, then parameter types in parentheses, each void, u8, u16, u32, u64, i32, \
         i64, f32 or f64, optionally as `const T*` or `T*`)"
    )]
    Syntax { given: String, why: String },
}

/// The contract of the target, per the rule in the module documentation.
pub fn target_contract(
    segment: &str,
    function: &Function,
    symbol: &str,
    object: &ObjectRef,
    assumed: Option<&str>,
) -> Result<TargetContract, ContractError> {
    let declared = signature(&function.contract);
    if let Some(given) = assumed {
        let assumed = canonical(given)?;
        if assumed != declared {
            return Err(ContractError::Mismatch {
                symbol: symbol.to_owned(),
                segment: segment.to_owned(),
                function: function.symbol.clone(),
                assumed,
                declared,
            });
        }
        return Ok(TargetContract {
            hash: hash(&assumed),
            signature: assumed,
            source: ContractSource::Assumed,
        });
    }
    let why = if function.library.is_empty() {
        Some("the segment names no library for it".to_owned())
    } else if symbol != function.symbol {
        Some(format!(
            "the target is named {symbol}, not {}",
            function.symbol
        ))
    } else if !object.is_library(&function.library) {
        Some(format!("{} is not {}", object.path, function.library))
    } else {
        None
    };
    match why {
        None => Ok(TargetContract {
            hash: hash(&declared),
            signature: declared,
            source: ContractSource::Declared,
        }),
        Some(why) => Err(ContractError::Unknown {
            target: format!("{symbol} in {}", object.path),
            segment: segment.to_owned(),
            declared_for: if function.library.is_empty() {
                function.symbol.clone()
            } else {
                format!("{} in {}", function.symbol, function.library)
            },
            declared,
            why,
        }),
    }
}

/// The canonical contract signature of `contract` (the definition the
/// library upload uses, so the module compares like with like).
pub fn signature(contract: &Contract) -> String {
    adapt_client::upload::contract_signature(contract)
}

/// The contract hash of a canonical signature.
pub fn hash(signature: &str) -> u64 {
    adapt_client::upload::signature_hash(signature)
}

const SCALARS: [&str; 9] = [
    "void", "u8", "u16", "u32", "u64", "i32", "i64", "f32", "f64",
];

/// `given` (a signature as a user writes it) in canonical form.
pub fn canonical(given: &str) -> Result<String, ContractError> {
    let fail = |why: &str| ContractError::Syntax {
        given: given.to_owned(),
        why: why.to_owned(),
    };
    let body = given.trim();
    let body = body.strip_prefix(SIGNATURE_PREFIX).unwrap_or(body);
    let open = body.find('(').ok_or_else(|| fail("no `(`"))?;
    let inner = body[open + 1..]
        .trim_end()
        .strip_suffix(')')
        .ok_or_else(|| fail("it does not end with `)`"))?;
    if inner.contains('(') || inner.contains(')') {
        return Err(fail("nested parentheses"));
    }
    let ret =
        canonical_type(&body[..open]).ok_or_else(|| fail("the return type is not a known type"))?;
    let mut params: Vec<String> = Vec::new();
    if !inner.trim().is_empty() {
        for (i, p) in inner.split(',').enumerate() {
            params.push(
                canonical_type(p)
                    .ok_or_else(|| fail(&format!("parameter {} is not a known type", i + 1)))?,
            );
        }
    }
    if params.len() == 1 && params[0] == "void" {
        params.clear();
    }
    if params.iter().any(|p| p == "void") {
        return Err(fail("a parameter cannot be void"));
    }
    Ok(format!("{SIGNATURE_PREFIX}{ret}({})", params.join(",")))
}

/// One type in canonical form: `T`, `const T*` or `T*`.
fn canonical_type(text: &str) -> Option<String> {
    let t = text.trim();
    let (constant, t) = match t.strip_prefix("const") {
        Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest.trim_start()),
        _ => (false, t),
    };
    let (pointer, t) = match t.strip_suffix('*') {
        Some(rest) => (true, rest.trim_end()),
        None => (false, t),
    };
    if !SCALARS.contains(&t) || (constant && !pointer) {
        return None;
    }
    Some(match (constant, pointer) {
        (true, _) => format!("const {t}*"),
        (false, true) => format!("{t}*"),
        (false, false) => t.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapt_segment::{CType, Param, Scalar};
    use adapt_target::ObjectRole;
    use sha2::{Digest, Sha256};

    fn crc32() -> Function {
        Function {
            symbol: "crc32".into(),
            library: "libz.so.1".into(),
            contract: Contract {
                returns: CType::value(Scalar::U64, "uLong"),
                params: vec![
                    Param {
                        name: "crc".into(),
                        ty: CType::value(Scalar::U64, "uLong"),
                    },
                    Param {
                        name: "buf".into(),
                        ty: CType::const_ptr(Scalar::U8, "const Bytef *"),
                    },
                    Param {
                        name: "len".into(),
                        ty: CType::value(Scalar::U32, "uInt"),
                    },
                ],
            },
            reference: String::new(),
        }
    }

    fn object(path: &str, kind: ObjectRole, soname: Option<&str>) -> ObjectRef {
        ObjectRef {
            path: path.into(),
            kind,
            soname: soname.map(str::to_owned),
        }
    }

    const LIBZ: &str = "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13";

    #[test]
    fn the_hash_is_the_one_the_library_upload_pins() {
        // The same pinned value as cli/library/upload.rs's test: the module
        // compares this hash with the one stored at upload.
        let digest = Sha256::digest(b"adapt-contract-v1:u64(u64,const u8*,u32)");
        let pinned = u64::from_le_bytes(digest[..8].try_into().unwrap());
        assert_eq!(
            signature(&crc32().contract),
            "adapt-contract-v1:u64(u64,const u8*,u32)"
        );
        assert_eq!(hash(&signature(&crc32().contract)), pinned);
        let none = Contract {
            returns: CType::value(Scalar::Void, "void"),
            params: vec![],
        };
        assert_eq!(signature(&none), "adapt-contract-v1:void()");
    }

    #[test]
    fn the_declared_contract_applies_to_that_symbol_in_that_library_only() {
        let libz = object(LIBZ, ObjectRole::SharedLibrary, Some("libz.so.1"));
        let c = target_contract("crc32", &crc32(), "crc32", &libz, None).unwrap();
        assert_eq!(c.source, ContractSource::Declared);
        assert_eq!(c.hash, hash("adapt-contract-v1:u64(u64,const u8*,u32)"));
        // Without a soname, the file name's version suffix still matches.
        let bare = object(LIBZ, ObjectRole::SharedLibrary, None);
        assert!(target_contract("crc32", &crc32(), "crc32", &bare, None).is_ok());

        // Inside an executable: unknown, and the message shows what to pass.
        let exe = object("/usr/bin/prog", ObjectRole::Executable, None);
        let err = target_contract("crc32", &crc32(), "crc32", &exe, None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/usr/bin/prog is not libz.so.1"), "{msg}");
        assert!(
            msg.contains("--assume-contract 'u64(u64,const u8*,u32)'"),
            "{msg}"
        );
        // Another library that happens to export crc32.
        let other = object(
            "/opt/lib/libminiz.so.2",
            ObjectRole::SharedLibrary,
            Some("libminiz.so.2"),
        );
        assert!(matches!(
            target_contract("crc32", &crc32(), "crc32", &other, None),
            Err(ContractError::Unknown { .. })
        ));
        // Another name in the right library.
        let err = target_contract("crc32", &crc32(), "crc32_combine", &libz, None).unwrap_err();
        assert!(
            err.to_string().contains("named crc32_combine, not crc32"),
            "{err}"
        );
        // A function without a declared library.
        let mut free = crc32();
        free.library.clear();
        let err = target_contract("crc32", &free, "crc32", &libz, None).unwrap_err();
        assert!(err.to_string().contains("names no library"), "{err}");
    }

    #[test]
    fn an_assumed_contract_must_be_the_segments() {
        let exe = object("/usr/bin/prog", ObjectRole::Executable, None);
        let c = target_contract(
            "crc32",
            &crc32(),
            "my_crc",
            &exe,
            Some(" u64 ( u64 , const u8 * , u32 ) "),
        )
        .unwrap();
        assert_eq!(c.source, ContractSource::Assumed);
        assert_eq!(c.signature, "adapt-contract-v1:u64(u64,const u8*,u32)");
        assert_eq!(c.hash, hash(&c.signature));
        let err = target_contract(
            "crc32",
            &crc32(),
            "my_crc",
            &exe,
            Some("u32(u32,const u8*,u64)"),
        )
        .unwrap_err();
        assert!(matches!(err, ContractError::Mismatch { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("`adapt-contract-v1:u32(u32,const u8*,u64)`"),
            "{err}"
        );
        // Assuming also works where the declared contract would apply.
        let libz = object(LIBZ, ObjectRole::SharedLibrary, None);
        assert_eq!(
            target_contract(
                "crc32",
                &crc32(),
                "crc32",
                &libz,
                Some("adapt-contract-v1:u64(u64,const u8*,u32)")
            )
            .unwrap()
            .source,
            ContractSource::Assumed
        );
    }

    #[test]
    fn signature_syntax() {
        assert_eq!(canonical("void(void)").unwrap(), "adapt-contract-v1:void()");
        assert_eq!(canonical("void()").unwrap(), "adapt-contract-v1:void()");
        assert_eq!(
            canonical("f32(const f32*,const f32 *,u64)").unwrap(),
            "adapt-contract-v1:f32(const f32*,const f32*,u64)"
        );
        assert_eq!(
            canonical("void(f32*, u64)").unwrap(),
            "adapt-contract-v1:void(f32*,u64)"
        );
        for bad in [
            "",
            "u64",
            "u64(",
            "u64(u64",
            "int(u64)",
            "u64(const u64)",
            "u64(void,u64)",
            "u64((u64))",
            "u64(constu8*)",
            "u64(u64,)",
        ] {
            let err = canonical(bad).unwrap_err();
            assert!(
                err.to_string().contains("--assume-contract"),
                "{bad}: {err}"
            );
        }
    }
}
