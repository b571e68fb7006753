//! One variant of a segment, turned into what `ADAPT_IOC_LIBRARY_LOAD`
//! uploads, and the two hashes that identify what was uploaded.
//!
//! # Contract hash (per entry)
//!
//! The module keeps, for every entry, a 64-bit hash of the replaced
//! function's C ABI contract; an injection must later name the same hash.
//! It covers exactly what the calling convention depends on — the scalar
//! kind and indirection of the return value and of each parameter, in order
//! — and nothing cosmetic (parameter names and typedef spellings are left
//! out, so renaming `uLong` does not change it). It is computed from the
//! *contract signature*, a canonical ASCII string:
//!
//! ```text
//! adapt-contract-v1:RET(P1,P2,...)
//! type  = SCALAR            passed by value
//!       | "const " SCALAR "*"   pointer to data the callee only reads
//!       | SCALAR "*"            pointer to data the callee may write
//! SCALAR = void | u8 | u16 | u32 | u64 | i32 | i64 | f32 | f64
//! ```
//!
//! e.g. zlib's `uLong crc32(uLong crc, const Bytef *buf, uInt len)` is
//! `adapt-contract-v1:u64(u64,const u8*,u32)`, and a function without
//! parameters is `adapt-contract-v1:void()`. The hash is the first 8 bytes
//! of the sha256 of that string, read as a little-endian `u64`
//! ([`contract_hash`]).
//!
//! # Variant hash (per upload)
//!
//! The 32-byte `hash` of the upload, by which the module detects duplicates,
//! is the sha256 of this byte string (integers little-endian, `str` = `u32`
//! byte length then the UTF-8 bytes, `bytes` = `u32` length then the bytes):
//!
//! ```text
//! "adapt-variant-v1\0"
//! u32 ADAPT_SEGMENT_FORMAT_VERSION   (a variant with imports: u32
//!                                    ADAPT_SEGMENT_FORMAT_VERSION_IMPORTS,
//!                                    then u32 nimports)
//! str segment name      str variant name
//! u64 cpu feature bits  u32 rodata_align
//! bytes code            bytes rodata
//! u32 relocation count, then per relocation: u32 offset, u32 rodata_offset, i32 addend
//! u32 entry count, then per entry: u32 offset, u64 contract hash, str symbol
//! ```
//!
//! It covers every byte the module is given, so two uploads share a hash
//! exactly when they are the same upload ([`variant_hash`]).
//!
//! # Loading
//!
//! [`ensure_loaded`] uploads one variant of a verified segment (the module
//! answers a duplicate with the id it already has): what `adaptctl inject`
//! and `auto` call, in-process, and what `adaptctl library load` does per
//! variant.

use crate::library::{self, entry, LibraryError, LoadOutcome, VariantUpload};
use crate::Device;
use adapt_abi as abi;
use adapt_segment::{CType, Contract, Indirection, Scalar, Segment, SegmentFile};
use sha2::{Digest, Sha256};

/// Prefix and version of the contract signature.
pub const CONTRACT_SIGNATURE_PREFIX: &str = "adapt-contract-v1:";
/// Domain separator and version of the variant hash encoding.
pub const VARIANT_HASH_DOMAIN: &[u8] = b"adapt-variant-v1\0";

/// Why a variant cannot be uploaded.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "segment {segment} has no variant {variant}: see `adaptctl library show {segment}`, or \
         rebuild the library (`cargo run -p adapt-library-build --bin build-library` in the source tree)"
    )]
    NoSuchVariant { segment: String, variant: String },
    #[error(
        "variant {segment}/{variant} needs CPU feature {feature}, which ABI v{abi} of the module \
         has no bit for: it cannot be uploaded; drop the feature from the variant or extend \
         ADAPT_CPU_FEATURE_NAMES (and the ABI version)",
        abi = abi::ADAPT_ABI_VERSION
    )]
    FeatureWithoutBit {
        segment: String,
        variant: String,
        feature: &'static str,
    },
    #[error(
        "variant {segment}/{variant} has {entries} entry offsets for {functions} functions: the \
         segment is malformed; rebuild the library (`cargo run -p adapt-library-build --bin build-library` in the source tree)"
    )]
    EntryMismatch {
        segment: String,
        variant: String,
        entries: usize,
        functions: usize,
    },
    #[error(transparent)]
    Abi(#[from] LibraryError),
}

/// The canonical contract signature (see the module documentation).
pub fn contract_signature(contract: &Contract) -> String {
    let params: Vec<String> = contract
        .params
        .iter()
        .map(|p| type_signature(&p.ty))
        .collect();
    format!(
        "{CONTRACT_SIGNATURE_PREFIX}{}({})",
        type_signature(&contract.returns),
        params.join(",")
    )
}

/// The 64-bit contract hash stored in each entry: the first 8 bytes of
/// sha256([`contract_signature`]), little-endian.
pub fn contract_hash(contract: &Contract) -> u64 {
    signature_hash(&contract_signature(contract))
}

/// The contract hash of a canonical signature: the first 8 bytes of its
/// sha256, little-endian.
pub fn signature_hash(signature: &str) -> u64 {
    let digest = Sha256::digest(signature.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn type_signature(ty: &CType) -> String {
    let scalar = scalar_name(ty.scalar);
    match ty.indirection {
        Indirection::Value => scalar.to_owned(),
        Indirection::ConstPtr => format!("const {scalar}*"),
        Indirection::MutPtr => format!("{scalar}*"),
    }
}

fn scalar_name(scalar: Scalar) -> &'static str {
    match scalar {
        Scalar::Void => "void",
        Scalar::U8 => "u8",
        Scalar::U16 => "u16",
        Scalar::U32 => "u32",
        Scalar::U64 => "u64",
        Scalar::I32 => "i32",
        Scalar::I64 => "i64",
        Scalar::F32 => "f32",
        Scalar::F64 => "f64",
    }
}

/// The `ADAPT_CPU_*` bits of variant `index` of `segment`.
pub fn feature_bits(segment: &Segment, index: usize) -> Result<u64, UploadError> {
    let variant = segment
        .variants
        .get(index)
        .ok_or_else(|| UploadError::NoSuchVariant {
            segment: segment.name.clone(),
            variant: format!("#{index}"),
        })?;
    variant.features.iter().try_fold(0u64, |bits, feature| {
        abi::cpu_feature_bit(feature.name())
            .map(|bit| bits | bit)
            .ok_or_else(|| UploadError::FeatureWithoutBit {
                segment: segment.name.clone(),
                variant: variant.name.clone(),
                feature: feature.name(),
            })
    })
}

/// Variant `index` of `segment` as an upload: code, read-only data,
/// relocations, one entry per function (its symbol, entry offset and
/// [`contract_hash`]), feature bits and [`variant_hash`].
///
/// The segment should have been verified ([`adapt_segment::verify_segment`])
/// first; this only converts.
pub fn variant_upload(segment: &Segment, index: usize) -> Result<VariantUpload, UploadError> {
    variant_upload_with_imports(segment, index, 0)
}

/// [`variant_upload`] for a segment whose file declares `nimports` imports
/// (format version 2): the module lays the variant out with room for its
/// trampoline and import table (`abi::adapt_import_layout`).
pub fn variant_upload_with_imports(
    segment: &Segment,
    index: usize,
    nimports: u32,
) -> Result<VariantUpload, UploadError> {
    let cpu_features = feature_bits(segment, index)?;
    let variant = &segment.variants[index]; // In range: feature_bits checked it.
    if variant.entry_offsets.len() != segment.functions.len() {
        return Err(UploadError::EntryMismatch {
            segment: segment.name.clone(),
            variant: variant.name.clone(),
            entries: variant.entry_offsets.len(),
            functions: segment.functions.len(),
        });
    }
    let entries = segment
        .functions
        .iter()
        .zip(&variant.entry_offsets)
        .map(|(function, &offset)| {
            entry(&function.symbol, offset, contract_hash(&function.contract))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let relocs = variant
        .relocations
        .iter()
        .map(|r| abi::AdaptSegmentReloc {
            offset: r.offset,
            rodata_offset: r.rodata_offset,
            addend: r.addend,
            reserved: 0,
        })
        .collect();
    let mut upload = VariantUpload {
        segment: segment.name.clone(),
        variant: variant.name.clone(),
        hash: [0; 32],
        cpu_features,
        code: variant.code.clone(),
        rodata: variant.rodata.clone(),
        rodata_align: variant.rodata_align,
        relocs,
        entries,
        nimports,
        data_len: 0,
    };
    // Checks that the names fit the ABI, and that every count fits a u32
    // (which the hash encoding relies on).
    upload.request()?;
    upload.hash = variant_hash(&upload);
    Ok(upload)
}

/// Makes sure variant `variant` (by name) of the segment in `file` is
/// loaded in the module, with the file's imports, and returns its library
/// id: converts it ([`variant_upload_with_imports`]) and uploads it; a
/// variant the module already holds (same [`variant_hash`]) answers with
/// its existing id.
///
/// The segment should have been verified first
/// ([`SegmentFile::verify`]); the module checks the upload again.
pub fn ensure_loaded(
    device: &Device,
    file: &SegmentFile,
    variant: &str,
) -> Result<LoadOutcome, UploadError> {
    ensure_loaded_with_data(device, file, variant, 0)
}

/// [`ensure_loaded`] for a variant whose injections get a data area of
/// `data_len` bytes (generated code verified with
/// `adapt_segment::verify_with_data`; 0: none).
pub fn ensure_loaded_with_data(
    device: &Device,
    file: &SegmentFile,
    variant: &str,
    data_len: u32,
) -> Result<LoadOutcome, UploadError> {
    let segment = &file.segment;
    let (index, _) = segment
        .variant(variant)
        .ok_or_else(|| UploadError::NoSuchVariant {
            segment: segment.name.clone(),
            variant: variant.to_owned(),
        })?;
    // At most limits::MAX_IMPORTS (64), checked when the file was read.
    let mut upload = variant_upload_with_imports(segment, index, file.imports.len() as u32)?;
    if data_len != 0 {
        upload.data_len = data_len;
        upload.hash = variant_hash(&upload);
    }
    Ok(library::load_variant(device, &upload)?)
}

/// sha256 of the canonical encoding of `upload` (see the module
/// documentation); `upload.hash` itself is not part of it.
pub fn variant_hash(upload: &VariantUpload) -> [u8; 32] {
    let mut h = Sha256::new();
    let len = |h: &mut Sha256, n: usize| h.update((n as u32).to_le_bytes());
    let bytes = |h: &mut Sha256, b: &[u8]| {
        len(h, b.len());
        h.update(b);
    };
    h.update(VARIANT_HASH_DOMAIN);
    if upload.nimports == 0 {
        h.update(abi::ADAPT_SEGMENT_FORMAT_VERSION.to_le_bytes());
    } else {
        h.update(abi::ADAPT_SEGMENT_FORMAT_VERSION_IMPORTS.to_le_bytes());
        h.update(upload.nimports.to_le_bytes());
        if upload.data_len != 0 {
            h.update(b"data");
            h.update(upload.data_len.to_le_bytes());
        }
    }
    bytes(&mut h, upload.segment.as_bytes());
    bytes(&mut h, upload.variant.as_bytes());
    h.update(upload.cpu_features.to_le_bytes());
    h.update(upload.rodata_align.to_le_bytes());
    bytes(&mut h, &upload.code);
    bytes(&mut h, &upload.rodata);
    len(&mut h, upload.relocs.len());
    for r in &upload.relocs {
        h.update(r.offset.to_le_bytes());
        h.update(r.rodata_offset.to_le_bytes());
        h.update(r.addend.to_le_bytes());
    }
    len(&mut h, upload.entries.len());
    for e in &upload.entries {
        h.update(e.offset.to_le_bytes());
        h.update(e.contract_hash.to_le_bytes());
        bytes(
            &mut h,
            abi::name_str(&e.symbol).unwrap_or_default().as_bytes(),
        );
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapt_segment::{CpuFeature, CpuFeatures, Library, Param};
    use std::path::PathBuf;

    fn crc32_contract() -> Contract {
        Contract {
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
        }
    }

    /// The real library, built once for this test binary with the builder.
    fn library() -> PathBuf {
        adapt_library_build::builder::library_for_tests("client-unit")
    }

    /// The leaf segments of the library (those without imports, which
    /// `variant_upload` is for; the BLAS segments import `fallback`).
    fn segments() -> Vec<Segment> {
        let all: Vec<Segment> = Library::open(library())
            .unwrap()
            .load_all_files()
            .unwrap()
            .into_iter()
            .map(|(path, f)| f.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            .filter(|f| f.imports.is_empty())
            .map(|f| f.segment)
            .collect();
        assert!(all.len() >= 6, "the library has every segment of issue 4");
        all
    }

    #[test]
    fn contract_signature_keeps_only_what_the_abi_depends_on() {
        let c = crc32_contract();
        assert_eq!(
            contract_signature(&c),
            "adapt-contract-v1:u64(u64,const u8*,u32)"
        );
        // Renaming parameters or typedefs does not change the contract.
        let mut renamed = c.clone();
        renamed.params[1].name = "data".into();
        renamed.returns.spelling = "unsigned long".into();
        assert_eq!(contract_hash(&renamed), contract_hash(&c));
        // Any ABI-relevant change does.
        let mut other = c.clone();
        other.params[2].ty.scalar = Scalar::U64;
        assert_ne!(contract_hash(&other), contract_hash(&c));
        let mut writable = c.clone();
        writable.params[1].ty.indirection = Indirection::MutPtr;
        assert_eq!(
            contract_signature(&writable),
            "adapt-contract-v1:u64(u64,u8*,u32)"
        );
        assert_ne!(contract_hash(&writable), contract_hash(&c));
        let empty = Contract {
            returns: CType::value(Scalar::Void, "void"),
            params: vec![],
        };
        assert_eq!(contract_signature(&empty), "adapt-contract-v1:void()");
    }

    #[test]
    fn contract_hash_is_the_documented_sha256_prefix() {
        // Pinned, so a change of the definition cannot go unnoticed: the
        // injector compares this value with what the module stored.
        let digest = Sha256::digest(b"adapt-contract-v1:u64(u64,const u8*,u32)");
        let expected = u64::from_le_bytes(digest[..8].try_into().unwrap());
        assert_eq!(contract_hash(&crc32_contract()), expected);
        assert_eq!(
            format!("{expected:016x}"),
            format!("{:016x}", contract_hash(&crc32_contract()))
        );
    }

    #[test]
    fn every_abi_feature_name_is_a_segment_feature_and_back() {
        for &f in CpuFeature::ALL {
            assert!(
                abi::cpu_feature_bit(f.name()).is_some(),
                "{f} has no ABI bit"
            );
        }
        for name in abi::ADAPT_CPU_FEATURE_NAMES {
            assert!(
                name.parse::<CpuFeature>().is_ok(),
                "ABI feature {name} unknown to adapt-segment"
            );
        }
    }

    #[test]
    fn every_variant_of_every_built_segment_converts() {
        let mut variants = 0;
        for segment in segments() {
            for (index, variant) in segment.variants.iter().enumerate() {
                let u = variant_upload(&segment, index)
                    .unwrap_or_else(|e| panic!("{}/{}: {e}", segment.name, variant.name));
                variants += 1;
                let what = format!("{}/{}", segment.name, variant.name);
                assert_eq!(
                    (u.segment.as_str(), u.variant.as_str()),
                    (segment.name.as_str(), variant.name.as_str())
                );
                assert_eq!(u.code, variant.code, "{what}");
                assert_eq!(u.rodata, variant.rodata, "{what}");
                assert_eq!(u.rodata_align, variant.rodata_align, "{what}");
                // Feature bits: exactly the declared features, by ABI name.
                let back: CpuFeatures = crate::library::feature_names(u.cpu_features)
                    .iter()
                    .map(|n| n.parse::<CpuFeature>().unwrap())
                    .collect();
                assert_eq!(back, variant.features, "{what}");
                assert_eq!(
                    u.cpu_features.count_ones() as usize,
                    variant.features.iter().count(),
                    "{what}"
                );
                assert_eq!(u.cpu_features & !abi::ADAPT_CPU_FEATURES_ALL, 0, "{what}");
                // Entries: one per function, in order, with its symbol,
                // entry offset and contract hash.
                assert_eq!(u.entries.len(), segment.functions.len(), "{what}");
                for ((e, f), &offset) in u
                    .entries
                    .iter()
                    .zip(&segment.functions)
                    .zip(&variant.entry_offsets)
                {
                    assert_eq!(abi::name_str(&e.symbol), Some(f.symbol.as_str()), "{what}");
                    assert_eq!(e.offset, offset, "{what}");
                    assert!((e.offset as usize) < u.code.len(), "{what}");
                    assert_eq!(e.contract_hash, contract_hash(&f.contract), "{what}");
                    assert_eq!(e.flags, 0);
                }
                assert_eq!(u.relocs.len(), variant.relocations.len(), "{what}");
                for (r, s) in u.relocs.iter().zip(&variant.relocations) {
                    assert_eq!(
                        (r.offset, r.rodata_offset, r.addend, r.reserved),
                        (s.offset, s.rodata_offset, s.addend, 0)
                    );
                }
                // Every length within the module's limits.
                let req = u.request().unwrap();
                assert!(
                    req.code_len > 0 && req.code_len <= abi::ADAPT_SEGMENT_MAX_CODE,
                    "{what}"
                );
                assert!(req.rodata_len <= abi::ADAPT_SEGMENT_MAX_RODATA, "{what}");
                assert!(
                    req.rodata_align.is_power_of_two()
                        && req.rodata_align <= abi::ADAPT_SEGMENT_MAX_RODATA_ALIGN
                );
                assert!(
                    req.nrelocs <= abi::ADAPT_SEGMENT_MAX_RELOCS
                        && req.nentries <= abi::ADAPT_SEGMENT_MAX_ENTRIES
                );
                assert_eq!(u.hash, variant_hash(&u), "{what}");
            }
        }
        assert!(variants >= 16, "only {variants} variants converted");
    }

    #[test]
    fn variant_hashes_are_distinct_and_reproducible() {
        let mut seen = std::collections::HashSet::new();
        for segment in segments() {
            for index in 0..segment.variants.len() {
                let a = variant_upload(&segment, index).unwrap();
                let b = variant_upload(&segment.clone(), index).unwrap();
                assert_eq!(a.hash, b.hash);
                assert!(
                    seen.insert(a.hash),
                    "{}/{} shares a hash",
                    a.segment,
                    a.variant
                );
            }
        }
    }

    #[test]
    fn variant_hash_covers_every_uploaded_field() {
        let segment = segments().into_iter().find(|s| s.name == "crc32").unwrap();
        let base = variant_upload(&segment, 0).unwrap();
        let changes: Vec<fn(&mut VariantUpload)> = vec![
            |u| u.segment.push('x'),
            |u| u.variant.push('x'),
            |u| u.cpu_features ^= 1,
            |u| u.rodata_align *= 2,
            |u| u.code[0] ^= 1,
            |u| u.code.push(0xc3),
            |u| u.rodata.push(0),
            |u| u.relocs[0].addend += 1,
            |u| u.relocs[0].offset += 1,
            |u| u.relocs[0].rodata_offset += 1,
            |u| u.entries[0].offset += 1,
            |u| u.entries[0].contract_hash ^= 1,
            |u| u.entries[0].symbol[0] = b'x',
            |u| {
                u.entries.pop();
            },
        ];
        assert!(
            !base.relocs.is_empty(),
            "crc32's best variant has relocations"
        );
        for (i, change) in changes.iter().enumerate() {
            let mut u = base.clone();
            change(&mut u);
            assert_ne!(variant_hash(&u), base.hash, "change {i} kept the hash");
        }
        // Moving a byte between code and rodata changes it too (lengths are
        // part of the encoding).
        let mut u = base.clone();
        let byte = u.code.pop().unwrap();
        u.rodata.insert(0, byte);
        assert_ne!(variant_hash(&u), base.hash);
    }

    #[test]
    fn a_variant_index_out_of_range_is_an_error() {
        let segment = segments().remove(0);
        let err = variant_upload(&segment, segment.variants.len()).unwrap_err();
        assert!(matches!(err, UploadError::NoSuchVariant { .. }), "{err}");
    }
}
