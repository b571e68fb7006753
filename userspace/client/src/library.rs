//! The optimization library held by the module: uploading variants
//! (`ADAPT_IOC_LIBRARY_LOAD`), freeing them (`ADAPT_IOC_LIBRARY_UNLOAD`) and
//! listing them (`ADAPT_IOC_LIBRARY_LIST`).
//!
//! This module only speaks the ABI: it does not know segment files. A caller
//! (adaptctl) turns one variant of a segment into a [`VariantUpload`] — code,
//! read-only data, relocations, entries with their contract hashes, CPU
//! feature bits and the variant hash — after verifying it, and this module
//! hands it to the kernel and turns every errno into an error that names the
//! cause and the fix.

use crate::device::Device;
use adapt_abi as abi;
use serde::Serialize;
use std::io;

/// One variant of one segment, ready to upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantUpload {
    /// Segment name (e.g. `crc32`), at most [`abi::ADAPT_NAME_LEN`]` - 1` bytes.
    pub segment: String,
    /// Variant name (e.g. `pclmul`), at most [`abi::ADAPT_NAME_LEN`]` - 1` bytes.
    pub variant: String,
    /// sha256 identifying the variant; two uploads with the same hash are the
    /// same variant.
    pub hash: [u8; 32],
    /// `ADAPT_CPU_*` feature bits (see [`abi::cpu_feature_bit`]).
    pub cpu_features: u64,
    /// Position-independent machine code.
    pub code: Vec<u8>,
    /// Read-only data.
    pub rodata: Vec<u8>,
    /// Alignment of the read-only data's start (power of two, at most a page).
    pub rodata_align: u32,
    /// rel32 references from the code to the read-only data.
    pub relocs: Vec<abi::AdaptSegmentReloc>,
    /// One entry per function the variant implements.
    pub entries: Vec<abi::AdaptSegmentEntry>,
    /// Import slots of the variant (0: leaf code, uploaded exactly as
    /// before imports existed).
    pub nimports: u32,
    /// Bytes of the per-injection data area (0: none; only with imports):
    /// each injection maps its own zeroed read+write pages after the
    /// read-only data, at `abi::adapt_data_offset`.
    pub data_len: u32,
}

/// What a successful load did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LoadOutcome {
    /// The variant's library id in the module.
    pub id: u64,
    /// A variant with the same hash was loaded already; `id` is its id and
    /// nothing was copied.
    pub already_loaded: bool,
}

/// One variant loaded in the module, as `ADAPT_IOC_LIBRARY_LIST` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedVariant {
    pub id: u64,
    pub segment: String,
    pub variant: String,
    /// The variant hash, lowercase hex.
    pub hash: String,
    /// Raw `ADAPT_CPU_*` bits.
    pub cpu_features: u64,
    /// The names of those bits (unknown bits as `bit<N>`).
    pub features: Vec<String>,
    pub code_len: u32,
    pub rodata_len: u32,
    /// Functions (entries) it implements.
    pub entries: u32,
    /// Live injections using it.
    pub users: u32,
    /// Quarantined after a fault inside it: never injected again.
    pub quarantined: bool,
}

impl LoadedVariant {
    /// Interprets one `AdaptLibraryInfo`.
    pub fn from_info(info: &abi::AdaptLibraryInfo) -> Self {
        Self {
            id: info.id,
            segment: name_lossy(&info.segment),
            variant: name_lossy(&info.variant),
            hash: hex(&info.hash),
            cpu_features: info.cpu_features,
            features: feature_names(info.cpu_features),
            code_len: info.code_len,
            rodata_len: info.rodata_len,
            entries: info.nentries,
            users: info.users,
            quarantined: info.flags & abi::ADAPT_LIBRARY_F_QUARANTINED != 0,
        }
    }
}

/// Why a library request failed. Every message is one line naming the cause
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(
        "{what} name {name:?} is {len} bytes long, but the module takes at most {max}: \
         rename it in the segment catalog (segments/src/catalog.rs) and rebuild the library"
    )]
    NameTooLong {
        what: &'static str,
        name: String,
        len: usize,
        max: usize,
    },

    #[error(
        "{what} of {segment}/{variant} has {count} elements, more than the ioctl can describe: \
         the segment is malformed, rebuild the library (`cargo run -p adapt-library-build --bin build-library` in the source tree)"
    )]
    CountOverflow {
        what: &'static str,
        segment: String,
        variant: String,
        count: usize,
    },

    #[error(
        "the module refused {segment}/{variant} as too large (E2BIG): code {code_len} B \
         (limit {max_code}), rodata {rodata_len} B (limit {max_rodata}), {nrelocs} relocations \
         (limit {max_relocs}), {nentries} entries (limit {max_entries}); shrink the variant or \
         rebuild the library (`cargo run -p adapt-library-build --bin build-library` in the source tree)",
        max_code = abi::ADAPT_SEGMENT_MAX_CODE,
        max_rodata = abi::ADAPT_SEGMENT_MAX_RODATA,
        max_relocs = abi::ADAPT_SEGMENT_MAX_RELOCS,
        max_entries = abi::ADAPT_SEGMENT_MAX_ENTRIES
    )]
    TooLarge {
        segment: String,
        variant: String,
        code_len: usize,
        rodata_len: usize,
        nrelocs: usize,
        nentries: usize,
    },

    #[error(
        "the module refused {segment}/{variant} as malformed (EINVAL: a name, length, offset, \
         alignment, flag or CPU feature bit is out of bounds): run `adaptctl library verify \
         {segment}`, rebuild the library (`cargo run -p adapt-library-build --bin build-library` in the source tree), and make sure adapt.ko and adaptctl \
         come from the same source"
    )]
    Malformed { segment: String, variant: String },

    #[error(
        "the module's library is full (ENOSPC: at most {max_variants} variants and {max_mib} MiB \
         of code and data): unload variants you do not need with `adaptctl library unload`",
        max_variants = abi::ADAPT_LIBRARY_MAX_VARIANTS,
        max_mib = abi::ADAPT_LIBRARY_MAX_BYTES >> 20
    )]
    LibraryFull,

    #[error(
        "no variant with library id {id} is loaded in the module (ENOENT): see the loaded ids \
         with `adaptctl library list`"
    )]
    NoSuchVariant { id: u64 },

    #[error(
        "library variant {id} is used by {users} live injection(s) (EBUSY): revert them first, \
         or unload with --force, which reverts them"
    )]
    InUse { id: u64, users: u32 },

    #[error(
        "the loaded adapt module does not implement the optimization library ({what} gave \
         ENOTTY): load the adapt.ko built from the same source as adaptctl \
         (`rmmod adapt && insmod adapt.ko`)"
    )]
    NotSupported { what: &'static str },

    #[error(
        "the module refused {what} (permission denied): managing the library needs \
         CAP_SYS_ADMIN; run adaptctl as root"
    )]
    PermissionDenied { what: &'static str },

    #[error("{what} failed: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl LibraryError {
    /// A stable identifier for scripts (`--json`).
    pub fn kind(&self) -> &'static str {
        match self {
            LibraryError::NameTooLong { .. } => "name-too-long",
            LibraryError::CountOverflow { .. } => "malformed-variant",
            LibraryError::TooLarge { .. } => "variant-too-large",
            LibraryError::Malformed { .. } => "malformed-variant",
            LibraryError::LibraryFull => "library-full",
            LibraryError::NoSuchVariant { .. } => "no-such-variant",
            LibraryError::InUse { .. } => "variant-in-use",
            LibraryError::NotSupported { .. } => "abi-mismatch",
            LibraryError::PermissionDenied { .. } => "permission-denied",
            LibraryError::Io { .. } => "io",
        }
    }
}

impl VariantUpload {
    /// The `ADAPT_IOC_LIBRARY_LOAD` argument describing this upload. Its
    /// pointers point into `self`, which must stay alive and unmoved while
    /// the request is in use.
    pub fn request(&self) -> Result<abi::AdaptLibraryLoad, LibraryError> {
        let count = |what: &'static str, n: usize| {
            u32::try_from(n).map_err(|_| LibraryError::CountOverflow {
                what,
                segment: self.segment.clone(),
                variant: self.variant.clone(),
                count: n,
            })
        };
        Ok(abi::AdaptLibraryLoad {
            format_version: if self.nimports == 0 {
                abi::ADAPT_SEGMENT_FORMAT_VERSION
            } else {
                abi::ADAPT_SEGMENT_FORMAT_VERSION_IMPORTS
            },
            flags: 0,
            segment: name_field::<{ abi::ADAPT_NAME_LEN }>("segment", &self.segment)?,
            variant: name_field::<{ abi::ADAPT_NAME_LEN }>("variant", &self.variant)?,
            hash: self.hash,
            cpu_features: self.cpu_features,
            code: self.code.as_ptr() as u64,
            rodata: self.rodata.as_ptr() as u64,
            relocs: self.relocs.as_ptr() as u64,
            entries: self.entries.as_ptr() as u64,
            code_len: count("code", self.code.len())?,
            rodata_len: count("rodata", self.rodata.len())?,
            rodata_align: self.rodata_align,
            nrelocs: count("relocations", self.relocs.len())?,
            nentries: count("entries", self.entries.len())?,
            nimports: self.nimports,
            data_len: self.data_len,
            pad: 0,
            id: 0,
            reserved: [0; 4],
        })
    }

    /// The error for a refused load, from its errno.
    fn load_error(&self, source: io::Error) -> LibraryError {
        match source.raw_os_error() {
            Some(libc::E2BIG) => LibraryError::TooLarge {
                segment: self.segment.clone(),
                variant: self.variant.clone(),
                code_len: self.code.len(),
                rodata_len: self.rodata.len(),
                nrelocs: self.relocs.len(),
                nentries: self.entries.len(),
            },
            Some(libc::EINVAL) => LibraryError::Malformed {
                segment: self.segment.clone(),
                variant: self.variant.clone(),
            },
            _ => common_error("ADAPT_IOC_LIBRARY_LOAD", source),
        }
    }
}

/// An entry for `symbol` at code `offset` with `contract_hash`.
pub fn entry(
    symbol: &str,
    offset: u32,
    contract_hash: u64,
) -> Result<abi::AdaptSegmentEntry, LibraryError> {
    Ok(abi::AdaptSegmentEntry {
        offset,
        flags: 0,
        contract_hash,
        symbol: name_field::<{ abi::ADAPT_SYMBOL_LEN }>("symbol", symbol)?,
    })
}

/// Uploads one variant. A variant whose hash is already loaded is not an
/// error: the outcome says so and carries the existing id.
pub fn load_variant(device: &Device, upload: &VariantUpload) -> Result<LoadOutcome, LibraryError> {
    let mut request = upload.request()?;
    match device.ioctl(abi::ADAPT_IOC_LIBRARY_LOAD, &mut request) {
        Ok(_) => Ok(LoadOutcome {
            id: request.id,
            already_loaded: false,
        }),
        Err(err) if err.raw_os_error() == Some(libc::EEXIST) => Ok(LoadOutcome {
            id: request.id,
            already_loaded: true,
        }),
        Err(err) => Err(upload.load_error(err)),
    }
}

/// Frees variant `id`. Refused while injections use it, unless `force`
/// (which reverts them first).
pub fn unload(device: &Device, id: u64, force: bool) -> Result<(), LibraryError> {
    let mut request = abi::AdaptLibraryUnload {
        id,
        flags: if force {
            abi::ADAPT_LIBRARY_UNLOAD_F_FORCE
        } else {
            0
        },
        ..Default::default()
    };
    device
        .ioctl(abi::ADAPT_IOC_LIBRARY_UNLOAD, &mut request)
        .map(drop)
        .map_err(|source| unload_error(id, request.users, source))
}

fn unload_error(id: u64, users: u32, source: io::Error) -> LibraryError {
    match source.raw_os_error() {
        Some(libc::ENOENT) => LibraryError::NoSuchVariant { id },
        Some(libc::EBUSY) => LibraryError::InUse { id, users },
        _ => common_error("ADAPT_IOC_LIBRARY_UNLOAD", source),
    }
}

/// Every variant loaded in the module, in the module's order.
pub fn list(device: &Device) -> Result<Vec<LoadedVariant>, LibraryError> {
    let mut infos =
        vec![abi::AdaptLibraryInfo::default(); abi::ADAPT_LIBRARY_MAX_VARIANTS as usize];
    let mut request = abi::AdaptLibraryList {
        entries: infos.as_mut_ptr() as u64,
        capacity: abi::ADAPT_LIBRARY_MAX_VARIANTS,
        ..Default::default()
    };
    // The kernel writes at most `capacity` entries into `infos`, which has
    // exactly that many.
    device
        .ioctl(abi::ADAPT_IOC_LIBRARY_LIST, &mut request)
        .map_err(|source| common_error("ADAPT_IOC_LIBRARY_LIST", source))?;
    let count = (request.count as usize).min(infos.len());
    Ok(infos[..count]
        .iter()
        .map(LoadedVariant::from_info)
        .collect())
}

/// Errnos every library command may see.
fn common_error(what: &'static str, source: io::Error) -> LibraryError {
    match source.raw_os_error() {
        Some(libc::ENOSPC) => LibraryError::LibraryFull,
        Some(libc::ENOTTY) => LibraryError::NotSupported { what },
        Some(libc::EPERM) | Some(libc::EACCES) => LibraryError::PermissionDenied { what },
        _ => LibraryError::Io { what, source },
    }
}

fn name_field<const N: usize>(what: &'static str, name: &str) -> Result<[u8; N], LibraryError> {
    abi::name_field::<N>(name).ok_or_else(|| LibraryError::NameTooLong {
        what,
        name: name.to_owned(),
        len: name.len(),
        max: N - 1,
    })
}

fn name_lossy(field: &[u8]) -> String {
    match abi::name_str(field) {
        Some(name) => name.to_owned(),
        None => {
            let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            String::from_utf8_lossy(&field[..len]).into_owned()
        }
    }
}

/// The names of the `ADAPT_CPU_*` bits in `bits`, in bit order; bits the
/// ABI does not define appear as `bit<N>`.
pub fn feature_names(bits: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| bits & (1u64 << bit) != 0)
        .map(|bit| match abi::ADAPT_CPU_FEATURE_NAMES.get(bit) {
            Some(name) => (*name).to_owned(),
            None => format!("bit{bit}"),
        })
        .collect()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    adapt_segment::codec::hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload() -> VariantUpload {
        VariantUpload {
            segment: "crc32".into(),
            variant: "pclmul".into(),
            hash: [7; 32],
            cpu_features: abi::cpu_feature_bit("pclmulqdq").unwrap(),
            code: vec![0x89, 0xf8, 0xc3],
            rodata: vec![1, 2, 3, 4],
            rodata_align: 4,
            relocs: vec![abi::AdaptSegmentReloc {
                offset: 0,
                rodata_offset: 0,
                addend: -4,
                reserved: 0,
            }],
            entries: vec![entry("crc32", 0, 0x1234).unwrap()],
            nimports: 0,
            data_len: 0,
        }
    }

    #[test]
    fn request_points_into_the_upload_and_zeroes_reserved_fields() {
        let u = upload();
        let r = u.request().unwrap();
        assert_eq!(r.format_version, abi::ADAPT_SEGMENT_FORMAT_VERSION);
        assert_eq!(abi::name_str(&r.segment), Some("crc32"));
        assert_eq!(abi::name_str(&r.variant), Some("pclmul"));
        assert_eq!(r.hash, [7; 32]);
        assert_eq!(r.code, u.code.as_ptr() as u64);
        assert_eq!(r.rodata, u.rodata.as_ptr() as u64);
        assert_eq!(r.relocs, u.relocs.as_ptr() as u64);
        assert_eq!(r.entries, u.entries.as_ptr() as u64);
        assert_eq!(
            (
                r.code_len,
                r.rodata_len,
                r.rodata_align,
                r.nrelocs,
                r.nentries
            ),
            (3, 4, 4, 1, 1)
        );
        assert_eq!((r.flags, r.nimports, r.reserved, r.id), (0, 0, [0; 4], 0));
    }

    #[test]
    fn names_that_do_not_fit_the_abi_are_refused_before_the_ioctl() {
        let mut u = upload();
        u.segment = "s".repeat(abi::ADAPT_NAME_LEN);
        let err = u.request().unwrap_err();
        assert!(
            matches!(
                err,
                LibraryError::NameTooLong {
                    what: "segment",
                    max: 31,
                    ..
                }
            ),
            "{err}"
        );
        // The longest name that fits leaves room for the NUL.
        u.segment = "s".repeat(abi::ADAPT_NAME_LEN - 1);
        assert!(u.request().is_ok());
        let err = entry(&"f".repeat(abi::ADAPT_SYMBOL_LEN), 0, 0).unwrap_err();
        assert!(err.to_string().contains("at most 63"), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn load_errnos_name_the_variant_and_the_limits() {
        let u = upload();
        let err = u.load_error(io::Error::from_raw_os_error(libc::E2BIG));
        let msg = err.to_string();
        assert!(
            msg.contains("crc32/pclmul") && msg.contains("limit 1048576"),
            "{msg}"
        );
        assert_eq!(err.kind(), "variant-too-large");
        let err = u.load_error(io::Error::from_raw_os_error(libc::EINVAL));
        assert!(
            err.to_string().contains("adaptctl library verify crc32"),
            "{err}"
        );
        let err = u.load_error(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(err, LibraryError::LibraryFull));
        assert!(err.to_string().contains("256 variants and 32 MiB"), "{err}");
        let err = u.load_error(io::Error::from_raw_os_error(libc::ENOTTY));
        assert_eq!(err.kind(), "abi-mismatch");
        assert!(err.to_string().contains("insmod"), "{err}");
        let err = u.load_error(io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(
            err,
            LibraryError::Io {
                what: "ADAPT_IOC_LIBRARY_LOAD",
                ..
            }
        ));
    }

    #[test]
    fn unload_errnos_name_the_id_and_the_users() {
        let err = unload_error(9, 0, io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(err, LibraryError::NoSuchVariant { id: 9 }));
        assert!(err.to_string().contains("library id 9"), "{err}");
        let err = unload_error(4, 3, io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(
            err.to_string().split(" (EBUSY)").next(),
            Some("library variant 4 is used by 3 live injection(s)")
        );
        assert!(err.to_string().contains("--force"));
        assert_eq!(err.kind(), "variant-in-use");
    }

    #[test]
    fn list_entries_are_decoded() {
        let mut info = abi::AdaptLibraryInfo {
            id: 5,
            segment: abi::name_field("crc32").unwrap(),
            variant: abi::name_field("pclmul").unwrap(),
            hash: [0xab; 32],
            cpu_features: abi::cpu_feature_bit("pclmulqdq").unwrap()
                | abi::cpu_feature_bit("sse4.1").unwrap()
                | 1 << 40,
            code_len: 100,
            rodata_len: 64,
            nentries: 2,
            users: 1,
            flags: abi::ADAPT_LIBRARY_F_QUARANTINED,
            nimports: 0,
        };
        let v = LoadedVariant::from_info(&info);
        assert_eq!(
            (v.id, v.segment.as_str(), v.variant.as_str()),
            (5, "crc32", "pclmul")
        );
        assert_eq!(v.hash, "ab".repeat(32));
        assert_eq!(v.features, ["sse4.1", "pclmulqdq", "bit40"]);
        assert_eq!(
            (v.code_len, v.rodata_len, v.entries, v.users),
            (100, 64, 2, 1)
        );
        assert!(v.quarantined);
        info.flags = 0;
        info.segment = [0xff; abi::ADAPT_NAME_LEN];
        let v = LoadedVariant::from_info(&info);
        assert!(!v.quarantined);
        assert_eq!(v.segment, "\u{fffd}".repeat(abi::ADAPT_NAME_LEN));
    }
}
