//! Target introspection for adapt's injector: everything adaptctl checks
//! about a function in a running process before it asks the module to
//! redirect it.
//!
//! | task | call |
//! |---|---|
//! | find a function by name (executable, PIE or not, or any mapped library) | [`resolve_symbol`] → [`Resolution`] (run-time address, size, object, other definitions) |
//! | read live bytes | [`read_memory`] (`/proc/PID/mem`, read only) |
//! | decide the patch and check it is safe | [`plan_patch`], [`check_branches`] |
//! | all of it | [`inspect`] → [`Target`] |
//! | relocate the entry into a trampoline | [`relocate::relocate_plan`] |
//! | free ranges near a site for a segment | [`placement::free_ranges_near`] |
//!
//! [`inspect`] resolves the name, reads the function's body from its ELF
//! file, compares the live entry bytes with the file (refusing a function
//! already redirected, under a breakpoint, or modified), computes the patch
//! length on an instruction boundary, and refuses the function when code
//! inside it, or in the parts the compiler split off it (`NAME.cold`,
//! `NAME.part.N`, …), may branch into the replaced bytes.

pub mod memory;
pub mod placement;
pub mod prologue;
pub mod relocate;
pub mod resolve;

pub use memory::{read_memory, MemoryError};
pub use prologue::{check_branches, plan_patch, CheckOptions, PatchPlan, PrologueError};
pub use resolve::{
    resolve_symbol, ObjectRef, ObjectRole, Resolution, ResolveError, ResolvedSymbol,
};

use adapt_abi::ADAPT_PATCH_MAX;
use adapt_segment::codec::hex;
use serde::Serialize;

/// How many entry bytes are compared between memory and the file (and
/// decoded for the patch): the longest patch plus the longest instruction.
const LIVE_BYTES: u64 = (ADAPT_PATCH_MAX + 16) as u64;

/// A function in a running process, checked and ready to be patched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    pub pid: u32,
    pub symbol: ResolvedSymbol,
    pub patch: PatchPlan,
    /// The split-off parts whose branches were checked too.
    pub parts_checked: Vec<String>,
}

/// Why a function cannot be patched.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(
        "{name} in {object} has no size in its symbol table (hand-written assembly?): adaptctl \
         cannot check that the patch stays inside it"
    )]
    UnknownSize { name: String, object: String },
    #[error("{name} in {object}: its {size} bytes are not all in the file (corrupt object?)")]
    BodyNotInFile {
        name: String,
        object: String,
        size: u64,
    },
    #[error(
        "{name} at {address:#x} in pid {pid} is not the code of {object}: memory has {live}, the \
         file has {file}; {why}"
    )]
    Modified {
        name: String,
        object: String,
        pid: u32,
        address: u64,
        live: String,
        file: String,
        why: &'static str,
    },
    #[error("cannot patch {name} in {object}: {source}")]
    Prologue {
        name: String,
        object: String,
        #[source]
        source: PrologueError,
    },
}

/// Resolves `name` in `pid` (see [`resolve_symbol`] for the rules and
/// `object`), and checks its entry can be patched (see the crate
/// documentation).
pub fn inspect(
    pid: u32,
    name: &str,
    object: Option<&str>,
    options: CheckOptions,
) -> Result<Target, TargetError> {
    let Resolution {
        symbol,
        elf,
        function,
    } = resolve_symbol(pid, name, object)?;
    let object_path = symbol.object.path.clone();
    if function.size == 0 {
        return Err(TargetError::UnknownSize {
            name: symbol.name,
            object: object_path,
        });
    }
    let body =
        elf.bytes(function.vaddr, function.size)
            .ok_or_else(|| TargetError::BodyNotInFile {
                name: symbol.name.clone(),
                object: object_path.clone(),
                size: function.size,
            })?;
    let compared = function.size.min(LIVE_BYTES);
    // `compared` is at most LIVE_BYTES (32): it fits a usize.
    let live = read_memory(pid, symbol.address, compared as usize)?;
    let file = &body[..compared as usize];
    if live != file {
        return Err(TargetError::Modified {
            name: symbol.name.clone(),
            object: object_path,
            pid,
            address: symbol.address,
            live: hex(&live),
            file: hex(file),
            why: why_modified(&live),
        });
    }
    let prologue_error = |source| TargetError::Prologue {
        name: symbol.name.clone(),
        object: object_path.clone(),
        source,
    };
    let patch = plan_patch(symbol.address, &live, body, options).map_err(prologue_error)?;

    // Parts the compiler split off the function branch back into it.
    let bias = symbol.address.wrapping_sub(function.vaddr);
    let mut parts_checked = Vec::new();
    let mut parts: Vec<_> = elf
        .functions
        .iter()
        .filter(|f| is_split_part(&f.name, &function.name))
        .collect();
    parts.sort_by_key(|f| (f.vaddr, &f.name));
    for part in parts {
        let Some(code) = elf.bytes(part.vaddr, part.size) else {
            continue;
        };
        check_branches(
            part.vaddr.wrapping_add(bias),
            code,
            symbol.address,
            patch.patch_len,
            CheckOptions {
                // A part's own indirect jumps were the function's: judged above.
                allow_indirect_jumps: true,
            },
        )
        .map_err(prologue_error)?;
        parts_checked.push(part.name.clone());
    }
    Ok(Target {
        pid,
        symbol,
        patch,
        parts_checked,
    })
}

/// Whether `candidate` is a part GCC or clang split off `function`:
/// `function.cold`, `function.part.0`, `function.isra.0`,
/// `function.constprop.0`, …
fn is_split_part(candidate: &str, function: &str) -> bool {
    candidate
        .strip_prefix(function)
        .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
}

fn why_modified(live: &[u8]) -> &'static str {
    match live.first() {
        Some(0xe9) => {
            "it starts with a jmp: it is already redirected (by adapt: see `adaptctl list`; or by \
             another live patcher)"
        }
        Some(0xcc) => "it starts with int3: a debugger or uprobe has a breakpoint on it",
        _ if live.contains(&0xcc) => "it holds an int3: a debugger or uprobe has a breakpoint in it",
        _ => "the code was changed in memory; adaptctl only patches code it can check against its file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Deliberately not trivially short and without loops back into its
    // first bytes.
    #[inline(never)]
    #[no_mangle]
    pub extern "C" fn adapt_target_inspect_me(a: u64, b: u64) -> u64 {
        let mut x = std::hint::black_box(a);
        for i in 0..std::hint::black_box(b) {
            x = x.wrapping_mul(31).wrapping_add(i) ^ (x >> 7);
        }
        x
    }

    #[test]
    fn inspects_a_function_of_this_executable() {
        let t = inspect(
            std::process::id(),
            "adapt_target_inspect_me",
            None,
            CheckOptions::default(),
        )
        .unwrap();
        assert_eq!(
            t.symbol.address,
            adapt_target_inspect_me as *const () as u64
        );
        assert!((5..=16).contains(&t.patch.patch_len));
        // The expected bytes are the live bytes at the entry.
        let live = read_memory(
            std::process::id(),
            t.symbol.address,
            t.patch.patch_len as usize,
        )
        .unwrap();
        assert_eq!(t.patch.bytes(), &live[..]);
        assert!(t.patch.expected[t.patch.patch_len as usize..]
            .iter()
            .all(|&b| b == 0));
        assert!(!t.patch.replaced.is_empty());
        assert_eq!(adapt_target_inspect_me(3, 4), adapt_target_inspect_me(3, 4));
    }

    #[test]
    fn inspects_zlib_crc32_in_this_process() {
        // Load the system libz.so.1 into the test process, as the guest
        // workload does.
        let name = std::ffi::CString::new("libz.so.1").unwrap();
        // SAFETY: dlopen of a system library by name; the handle is
        // deliberately leaked so the library stays mapped for the test.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!handle.is_null(), "dlopen libz.so.1");
        let sym = std::ffi::CString::new("crc32").unwrap();
        // SAFETY: `handle` is a live dlopen handle and `sym` a C string.
        let crc32 = unsafe { libc::dlsym(handle, sym.as_ptr()) };
        assert!(!crc32.is_null());

        let t = inspect(
            std::process::id(),
            "crc32",
            Some("libz.so.1"),
            CheckOptions::default(),
        )
        .unwrap();
        assert_eq!(t.symbol.address, crc32 as u64);
        assert_eq!(t.symbol.object.kind, ObjectRole::SharedLibrary);
        assert!(t.symbol.object.is_library("libz.so.1"));
        assert_eq!(t.symbol.object.soname.as_deref(), Some("libz.so.1"));
        // Debian's zlib 1.2.13 crc32 is `mov edx,edx; jmp crc32_z@plt`.
        assert_eq!(t.patch.patch_len, 7, "{:?}", t.patch);
        assert_eq!(&t.patch.bytes()[..3], &[0x89, 0xd2, 0xe9]);
        // Without --object, the executable is searched first (it has no
        // crc32) and libz is found among the libraries.
        let any = inspect(std::process::id(), "crc32", None, CheckOptions::default()).unwrap();
        assert_eq!(any.symbol.address, t.symbol.address);
    }

    // Functions with exactly known bytes and sizes, in this process.
    std::arch::global_asm!(
        ".pushsection .text.adapt_target_fixtures,\"ax\",@progbits",
        // xor eax,eax; ret: 3 bytes.
        ".globl adapt_target_tiny",
        ".type adapt_target_tiny,@function",
        "adapt_target_tiny:",
        "xor eax, eax",
        "ret",
        ".size adapt_target_tiny, .-adapt_target_tiny",
        // A loop whose head (offset 2) is inside the 6-byte patch.
        ".globl adapt_target_loop",
        ".type adapt_target_loop,@function",
        "adapt_target_loop:",
        "xor eax, eax",
        "2:",
        "add eax, edi",
        "dec edi",
        "jnz 2b",
        "ret",
        ".size adapt_target_loop, .-adapt_target_loop",
        // No .size.
        ".globl adapt_target_sizeless",
        ".type adapt_target_sizeless,@function",
        "adapt_target_sizeless:",
        "mov eax, edi",
        "add eax, 12345",
        "ret",
        // A jump table.
        ".globl adapt_target_switch",
        ".type adapt_target_switch,@function",
        "adapt_target_switch:",
        "mov eax, edi",
        "lea rdx, [rip + 3f]",
        "jmp qword ptr [rdx + rax*8]",
        "3:",
        "ret",
        ".size adapt_target_switch, .-adapt_target_switch",
        ".popsection",
    );

    extern "C" {
        fn adapt_target_tiny() -> u32;
        fn adapt_target_loop(n: u32) -> u32;
    }

    fn refusal(name: &str) -> TargetError {
        inspect(std::process::id(), name, None, CheckOptions::default()).unwrap_err()
    }

    #[test]
    fn unsafe_entries_in_this_process_are_refused_with_the_reason() {
        // SAFETY: both fixtures follow the C ABI and touch no memory.
        assert_eq!(
            unsafe { (adapt_target_tiny(), adapt_target_loop(3)) },
            (0, 6)
        );
        let err = refusal("adapt_target_tiny");
        assert!(
            matches!(
                err,
                TargetError::Prologue {
                    source: PrologueError::TooShort { size: 3, needed: 5 },
                    ..
                }
            ),
            "{err}"
        );
        let err = refusal("adapt_target_loop");
        assert!(
            matches!(
                err,
                TargetError::Prologue {
                    source: PrologueError::BranchIntoPatch { patch_len: 6, .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("adapt_target_loop"), "{err}");
        let err = refusal("adapt_target_sizeless");
        assert!(matches!(err, TargetError::UnknownSize { .. }), "{err}");
        let err = refusal("adapt_target_switch");
        assert!(
            matches!(
                err,
                TargetError::Prologue {
                    source: PrologueError::IndirectJump { .. },
                    ..
                }
            ),
            "{err}"
        );
        let allowed = CheckOptions {
            allow_indirect_jumps: true,
        };
        let t = inspect(std::process::id(), "adapt_target_switch", None, allowed).unwrap();
        // mov eax,edi (2) + lea rdx,[rip+x] (7) = 9.
        assert_eq!(t.patch.patch_len, 9);
    }

    #[test]
    fn split_part_names() {
        assert!(is_split_part("inflate.cold", "inflate"));
        assert!(is_split_part("inflate.part.0", "inflate"));
        assert!(!is_split_part("inflate", "inflate"));
        assert!(!is_split_part("inflateEnd", "inflate"));
        assert!(!is_split_part("inflate.", "inflate"));
    }

    #[test]
    fn modified_entries_are_explained() {
        assert!(why_modified(&[0xe9, 0, 0, 0, 0]).contains("already redirected"));
        assert!(why_modified(&[0xcc, 0x90]).contains("breakpoint on it"));
        assert!(why_modified(&[0x55, 0xcc]).contains("breakpoint in it"));
        assert!(why_modified(&[0x55, 0x90]).contains("changed in memory"));
    }
}
