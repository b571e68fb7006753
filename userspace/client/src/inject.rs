//! Injections through `/dev/adapt`: redirecting a function of a running
//! process to a loaded library variant (`ADAPT_IOC_INJECT`), undoing it
//! (`ADAPT_IOC_REVERT`) and listing the live ones
//! (`ADAPT_IOC_INJECTION_LIST`). The policy is in [`crate::policy`].
//!
//! This module only speaks the ABI: the caller (adaptctl) has already
//! resolved the target address, decided the patch length on an instruction
//! boundary, read the bytes there and determined the contract hash. Every
//! errno the module documents becomes an [`InjectError`] whose message names
//! the cause and the fix.

use crate::device::Device;
use crate::library::hex;
use crate::policy::{get_policy_raw, Policy};
use adapt_abi as abi;
use serde::Serialize;
use std::io;

/// One injection to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectRequest {
    /// Target process.
    pub pid: u32,
    /// Run-time address of the function's entry in the target.
    pub target: u64,
    /// Library id of the loaded variant.
    pub variant_id: u64,
    /// Index of the variant's entry (function) to jump to.
    pub entry: u32,
    /// Contract hash of the target function, as adaptctl determined it.
    pub contract_hash: u64,
    /// The bytes currently at `target` that the patch replaces
    /// (`ADAPT_JMP_LEN..=ADAPT_PATCH_MAX`, ending on an instruction
    /// boundary).
    pub expected: Vec<u8>,
    /// The request comes from the automatic loop (quarantined variants are
    /// refused).
    pub automatic: bool,
    /// For a variant with imports: where to map it, its trampoline and its
    /// import slots (`None` for a leaf variant: the module places it).
    pub imports: Option<InjectImports>,
}

/// What an injection of a variant with imports gives the module (ABI 3):
/// the address chosen for the segment, the trampoline relocated for it and
/// the import slots' values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectImports {
    /// Page-aligned address of the variant's code in the target.
    pub segment_addr: u64,
    /// The trampoline (at most `ADAPT_TRAMPOLINE_MAX` bytes; empty when
    /// the segment does not import `fallback`).
    pub trampoline: Vec<u8>,
    /// The original bytes the trampoline was relocated from (empty without
    /// a trampoline; else `expected`).
    pub relocated: Vec<u8>,
    /// One value per import slot, in the file's import order.
    pub slots: Vec<u64>,
}

impl InjectRequest {
    /// The `ADAPT_IOC_INJECT` argument, checked for what the ABI bounds.
    pub fn to_abi(&self) -> Result<abi::AdaptInject, InjectError> {
        let len = self.expected.len();
        if !(abi::ADAPT_JMP_LEN as usize..=abi::ADAPT_PATCH_MAX).contains(&len) {
            return Err(InjectError::BadPatchLength { len });
        }
        let mut expected = [0u8; abi::ADAPT_PATCH_MAX];
        expected[..len].copy_from_slice(&self.expected);
        let mut trampoline = [0u8; abi::ADAPT_TRAMPOLINE_MAX];
        let mut relocated = [0u8; abi::ADAPT_PATCH_MAX];
        let (mut segment_addr, mut imports, mut nimports, mut trampoline_len) = (0, 0, 0, 0);
        if let Some(i) = &self.imports {
            if i.trampoline.len() > abi::ADAPT_TRAMPOLINE_MAX
                || i.relocated.len() > abi::ADAPT_PATCH_MAX
                || i.slots.len() > abi::ADAPT_SEGMENT_MAX_IMPORTS as usize
            {
                return Err(InjectError::BadPatchLength {
                    len: i.trampoline.len(),
                });
            }
            trampoline[..i.trampoline.len()].copy_from_slice(&i.trampoline);
            relocated[..i.relocated.len()].copy_from_slice(&i.relocated);
            segment_addr = i.segment_addr;
            imports = i.slots.as_ptr() as u64;
            // Bounded by the checks above.
            nimports = i.slots.len() as u32;
            trampoline_len = i.trampoline.len() as u32;
        }
        Ok(abi::AdaptInject {
            segment_addr,
            imports,
            nimports,
            trampoline_len,
            trampoline,
            relocated,
            pid: self.pid,
            flags: if self.automatic {
                abi::ADAPT_INJECT_F_AUTO
            } else {
                0
            },
            target: self.target,
            variant_id: self.variant_id,
            contract_hash: self.contract_hash,
            entry: self.entry,
            // `len` is at most ADAPT_PATCH_MAX (16), checked above.
            patch_len: len as u32,
            expected,
            ..Default::default()
        })
    }
}

/// What a successful injection did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Injected {
    /// Injection id (for revert).
    pub id: u64,
    /// Where the variant's code was mapped in the target.
    pub segment_addr: u64,
    /// How long the target's threads were held, ns.
    pub pause_ns: u64,
    /// Threads brought to the rendezvous.
    pub threads: u32,
    /// Rendezvous attempts (more than one when a thread was inside the
    /// bytes being replaced).
    pub attempts: u32,
}

/// What a successful revert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Reverted {
    pub id: u64,
    /// Rendezvous attempts.
    pub attempts: u32,
    /// How long the target's threads were held, ns (0 when the target had
    /// already exited or exec'd).
    pub pause_ns: u64,
}

/// One live injection, as the module lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Injection {
    pub id: u64,
    pub pid: u32,
    /// `live`; `stale` (a revert found the site changed and wrote nothing:
    /// not restored); `retired` (a reverted injection's segment, still
    /// mapped and inert until the process exits or execs; only the pid,
    /// variant and segment fields are set); or `state<N>` for a state this
    /// adaptctl does not know.
    pub state: String,
    pub target: u64,
    pub variant_id: u64,
    pub segment: String,
    pub variant: String,
    pub segment_addr: u64,
    /// Bytes mapped (code and read-only data).
    pub segment_len: u64,
    pub entry: u32,
    pub patch_len: u32,
    /// The original bytes at `target`, lowercase hex.
    pub original: String,
    /// `CLOCK_MONOTONIC` time of the injection, ns.
    pub injected_ns: u64,
    pub pause_ns: u64,
    /// Address of the trampoline to the original (0: none).
    pub trampoline_addr: u64,
    /// Bytes of the trampoline.
    pub trampoline_len: u32,
    /// Address of the import table in the target (0: a leaf segment).
    pub import_table_addr: u64,
    /// Import slots in the table.
    pub nimports: u32,
    /// Address of the injection's data area in the target (0: none):
    /// read+write, never executable, e.g. a counting segment's counters.
    pub data_addr: u64,
    /// Bytes of the data area.
    pub data_len: u32,
}

impl Injection {
    /// Interprets one `AdaptInjectionInfo`.
    pub fn from_info(info: &abi::AdaptInjectionInfo) -> Self {
        let patch_len = (info.patch_len as usize).min(abi::ADAPT_PATCH_MAX);
        Self {
            id: info.id,
            pid: info.pid,
            state: match info.state {
                abi::ADAPT_INJECTION_LIVE => "live".to_owned(),
                abi::ADAPT_INJECTION_STALE => "stale".to_owned(),
                abi::ADAPT_INJECTION_RETIRED => "retired".to_owned(),
                other => format!("state{other}"),
            },
            target: info.target,
            variant_id: info.variant_id,
            segment: name_lossy(&info.segment),
            variant: name_lossy(&info.variant),
            segment_addr: info.segment_addr,
            segment_len: info.segment_len,
            entry: info.entry,
            patch_len: info.patch_len,
            original: hex(&info.original[..patch_len]),
            injected_ns: info.injected_ns,
            pause_ns: info.pause_ns,
            trampoline_addr: info.trampoline_addr,
            trampoline_len: info.trampoline_len,
            import_table_addr: info.import_table_addr,
            nimports: info.nimports,
            data_addr: info.data_addr,
            data_len: info.data_len,
        }
    }
}

/// Why an injection request failed. Every message is one line naming the
/// cause and what to do.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error(
        "the patch would replace {len} bytes; it must be {}..={} bytes ending on an instruction \
         boundary",
        abi::ADAPT_JMP_LEN,
        abi::ADAPT_PATCH_MAX
    )]
    BadPatchLength { len: usize },

    #[error("no process with pid {pid} (ESRCH): pass a running process id, not a thread id")]
    NoSuchProcess { pid: u32 },

    #[error("pid {pid} is a kernel thread (EOPNOTSUPP): only user processes can be injected into")]
    KernelThread { pid: u32 },

    #[error(
        "not allowed to inject into pid {pid} (EPERM): the caller needs CAP_SYS_ADMIN and \
         CAP_SYS_PTRACE (run as root), and the target must be dumpable (setuid programs and \
         processes that called prctl(PR_SET_DUMPABLE, 0) are refused)"
    )]
    NotPermitted { pid: u32 },

    #[error(
        "injection is disabled by the module's policy (EACCES): enable it with `adaptctl policy \
         set --enable`"
    )]
    PolicyDisabled,

    #[error(
        "variant {variant_id} is quarantined after a fault inside it (EACCES): it is never \
         injected automatically again; inject it by hand only if you know why it faulted, or \
         unload it with `adaptctl library unload {variant_id}`"
    )]
    Quarantined { variant_id: u64 },

    #[error(
        "the policy does not allow pid {pid} as a target (EACCES: its uid, command name or \
         executable is not among the policy's targets{also}): see `adaptctl policy show`"
    )]
    TargetNotAllowed { pid: u32, also: &'static str },

    #[error(
        "the policy's injection limit is reached (EDQUOT: at most {max_per_process} per process, \
         {max_total} in all): revert injections (`adaptctl revert`) or raise the limits with \
         `adaptctl policy set --max-per-process N --max-total N`"
    )]
    LimitReached {
        max_per_process: u32,
        max_total: u32,
    },

    #[error(
        "no variant with library id {variant_id} is loaded in the module (ENOENT): load the \
         segment with `adaptctl library load` (see `adaptctl library list`)"
    )]
    NoSuchVariant { variant_id: u64 },

    #[error(
        "the module refused the request as malformed (EINVAL: entry {entry} of variant \
         {variant_id}, patch length {patch_len}): check the entry index against `adaptctl library \
         show`, and that adapt.ko and adaptctl come from the same source"
    )]
    BadRequest {
        variant_id: u64,
        entry: u32,
        patch_len: u32,
    },

    #[error(
        "this CPU lacks a feature variant {variant_id} needs (ENODEV): inject a variant this CPU \
         supports (`adaptctl library show SEGMENT` marks them)"
    )]
    CpuLacksFeature { variant_id: u64 },

    #[error(
        "contract mismatch (EPROTO): the target function's C contract (hash {contract_hash:016x}) \
         is not the one entry {entry} of variant {variant_id} implements; pick the segment that \
         replaces this function, or correct --assume-contract"
    )]
    ContractMismatch {
        variant_id: u64,
        entry: u32,
        contract_hash: u64,
    },

    #[error(
        "address {target:#x} is not mapped executable in pid {pid} (EFAULT): the library was \
         unloaded or the address is wrong; resolve the symbol again"
    )]
    NotExecutable { pid: u32, target: u64 },

    #[error(
        "the bytes at {target:#x} in pid {pid} are no longer {expected} (ESTALE): the code changed \
         since adaptctl read it (another patcher, a debugger, or the library was reloaded); retry"
    )]
    BytesChanged {
        pid: u32,
        target: u64,
        expected: String,
    },

    #[error(
        "{target:#x} in pid {pid} is already patched (EEXIST): revert the injection there first \
         (`adaptctl list --pid {pid}`, then `adaptctl revert`)"
    )]
    AlreadyPatched { pid: u32, target: u64 },

    #[error(
        "no free address range within ±2 GiB of {target:#x} in pid {pid} to map the segment \
         (ENOSPC): the process's address space around the function is full"
    )]
    NoAddressSpace { pid: u32, target: u64 },

    #[error(
        "the address range at {segment_addr:#x} in pid {pid} is taken (EADDRINUSE): something was \
         mapped there since adaptctl read the process's maps; retry"
    )]
    AddressInUse { pid: u32, segment_addr: u64 },

    #[error(
        "a thread of pid {pid} stayed inside the bytes to replace or did not reach the rendezvous \
         (EBUSY), after the module's retries; nothing was changed: retry later"
    )]
    Busy { pid: u32 },

    #[error(
        "pid {pid} {thread} is stopped, traced or frozen (EDEADLK): adapt does not wait for it; \
         resume it (`kill -CONT {pid}`, detach the debugger, thaw its cgroup) or try later"
    )]
    ThreadHeld { pid: u32, thread: String },

    #[error(
        "pid {pid} shares its address space with another process (EUSERS: clone(CLONE_VM) \
         without CLONE_THREAD, or a vfork child that has not exec'd yet): adapt cannot hold every \
         user of that memory, so it does not change it"
    )]
    SharedAddressSpace { pid: u32 },

    #[error(
        "the bytes at {target:#x} in pid {pid} differ from the file mapped there (ETXTBSY): a \
         uprobe, a debugger breakpoint or another patcher is in place; adapt does not patch over it"
    )]
    SiteModified { pid: u32, target: u64 },

    #[error(
        "{target:#x} in pid {pid} is anonymous executable memory (ENOEXEC: JIT code, no file to \
         check the bytes against): adapt patches only code mapped from a file"
    )]
    AnonymousCode { pid: u32, target: u64 },

    #[error(
        "{what} was interrupted (EINTR: a signal to adaptctl, or a target thread was killed while \
         held); nothing was changed"
    )]
    Interrupted { what: &'static str },

    #[error(
        "pid {pid} kept creating threads faster than adapt could hold them (EAGAIN); nothing was \
         changed: retry later"
    )]
    ThreadsKeepAppearing { pid: u32 },

    #[error(
        "a thread of injection {id}'s process is stopped, traced or frozen (EDEADLK): adapt does \
         not wait for it; the injection is still live: resume the process (`kill -CONT`, detach \
         the debugger, thaw its cgroup) and revert again"
    )]
    RevertHeld { id: u64 },

    #[error(
        "injection {id}'s process now shares its address space with another process (EUSERS: \
         clone(CLONE_VM) or a vfork child): the injection is still live; revert it once the other \
         process has exec'd or exited"
    )]
    RevertShared { id: u64 },

    #[error(
        "injection {id} was not restored: its site changed since it was patched (ESTALE: the \
         library was unloaded and something else mapped there, or a debugger, uprobe or JIT \
         rewrote the bytes), so adapt wrote nothing; it is listed as stale, and reverting it again \
         forgets it"
    )]
    RevertStale { id: u64 },

    #[error(
        "no live injection has id {id} (ENOENT): it was reverted already (also automatically, \
         when its process exited or exec'd) or never existed; see `adaptctl list`"
    )]
    NoSuchInjection { id: u64 },

    #[error(
        "a thread of the target stayed inside injection {id}'s segment or patched bytes (EBUSY): \
         nothing was changed, the injection is still live; retry the revert"
    )]
    RevertBusy { id: u64 },

    #[error(
        "policy limits out of range: max-per-process {} and max-total {} must satisfy \
         1 <= max-per-process <= max-total <= {}",
        policy.max_per_process,
        policy.max_total,
        abi::ADAPT_POLICY_MAX_TOTAL
    )]
    BadPolicy { policy: Policy },

    #[error(
        "the loaded adapt module does not implement injection ({what} gave ENOTTY): load the \
         adapt.ko built from the same source as adaptctl (`rmmod adapt && insmod adapt.ko`)"
    )]
    NotSupported { what: &'static str },

    #[error("{what} failed: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl InjectError {
    /// A stable identifier for scripts (`--json`).
    pub fn kind(&self) -> &'static str {
        match self {
            InjectError::BadPatchLength { .. } => "bad-patch",
            InjectError::NoSuchProcess { .. } => "no-such-process",
            InjectError::KernelThread { .. } => "kernel-thread",
            InjectError::NotPermitted { .. } => "not-permitted",
            InjectError::PolicyDisabled => "policy-disabled",
            InjectError::Quarantined { .. } => "quarantined",
            InjectError::TargetNotAllowed { .. } => "target-not-allowed",
            InjectError::LimitReached { .. } => "limit-reached",
            InjectError::NoSuchVariant { .. } => "no-such-variant",
            InjectError::BadRequest { .. } => "bad-request",
            InjectError::CpuLacksFeature { .. } => "unsupported-variant",
            InjectError::ContractMismatch { .. } => "contract-mismatch",
            InjectError::NotExecutable { .. } => "not-executable",
            InjectError::BytesChanged { .. } => "bytes-changed",
            InjectError::AlreadyPatched { .. } => "already-patched",
            InjectError::NoAddressSpace { .. } => "no-address-space",
            InjectError::AddressInUse { .. } => "address-in-use",
            InjectError::Busy { .. } => "busy",
            InjectError::ThreadHeld { .. } => "thread-held",
            InjectError::SharedAddressSpace { .. } => "shared-address-space",
            InjectError::SiteModified { .. } => "site-modified",
            InjectError::AnonymousCode { .. } => "anonymous-code",
            InjectError::Interrupted { .. } => "interrupted",
            InjectError::ThreadsKeepAppearing { .. } => "threads-keep-appearing",
            InjectError::RevertStale { .. } => "stale",
            InjectError::RevertHeld { .. } => "thread-held",
            InjectError::RevertShared { .. } => "shared-address-space",
            InjectError::NoSuchInjection { .. } => "no-such-injection",
            InjectError::RevertBusy { .. } => "busy",
            InjectError::BadPolicy { .. } => "bad-policy",
            InjectError::NotSupported { .. } => "abi-mismatch",
            InjectError::Io { .. } => "io",
        }
    }
}

/// Redirects `request.target` to the variant's entry. On `EACCES` the
/// policy is read to tell a disabled policy from a quarantined variant.
pub fn inject(device: &Device, request: &InjectRequest) -> Result<Injected, InjectError> {
    let mut arg = request.to_abi()?;
    match device.ioctl(abi::ADAPT_IOC_INJECT, &mut arg) {
        Ok(_) => Ok(Injected {
            id: arg.id,
            segment_addr: arg.segment_addr,
            pause_ns: arg.pause_ns,
            threads: arg.threads,
            attempts: arg.attempts,
        }),
        Err(source) => {
            let policy = match source.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EDQUOT) => get_policy_raw(device).ok(),
                _ => None,
            };
            Err(inject_error(request, policy, source))
        }
    }
}

/// The error for a refused injection, from its errno (and the policy, when
/// it could be read).
fn inject_error(
    request: &InjectRequest,
    raw_policy: Option<abi::AdaptPolicy>,
    source: io::Error,
) -> InjectError {
    let policy = raw_policy.as_ref().map(Policy::from_abi);
    let targets_restricted = raw_policy.is_some_and(|p| p.nuids + p.ncomms + p.nexes > 0);
    let pid = request.pid;
    let target = request.target;
    match source.raw_os_error() {
        Some(libc::ESRCH) => InjectError::NoSuchProcess { pid },
        Some(libc::EOPNOTSUPP) => InjectError::KernelThread { pid },
        Some(libc::EPERM) => InjectError::NotPermitted { pid },
        Some(libc::EACCES) => match policy {
            None => InjectError::PolicyDisabled,
            Some(p) if !p.enabled => InjectError::PolicyDisabled,
            // Only automatic requests are refused for a quarantined variant.
            Some(_) if request.automatic && !targets_restricted => InjectError::Quarantined {
                variant_id: request.variant_id,
            },
            Some(_) => InjectError::TargetNotAllowed {
                pid,
                also: if request.automatic {
                    ", or the variant is quarantined"
                } else {
                    ""
                },
            },
        },
        Some(libc::EDQUOT) => {
            let p = policy.unwrap_or(Policy {
                enabled: true,
                max_per_process: abi::ADAPT_POLICY_DEFAULT_PER_PROCESS,
                max_total: abi::ADAPT_POLICY_DEFAULT_TOTAL,
            });
            InjectError::LimitReached {
                max_per_process: p.max_per_process,
                max_total: p.max_total,
            }
        }
        Some(libc::ENOENT) => InjectError::NoSuchVariant {
            variant_id: request.variant_id,
        },
        Some(libc::EINVAL) => InjectError::BadRequest {
            variant_id: request.variant_id,
            entry: request.entry,
            patch_len: request.expected.len() as u32,
        },
        Some(libc::ENODEV) => InjectError::CpuLacksFeature {
            variant_id: request.variant_id,
        },
        Some(libc::EPROTO) => InjectError::ContractMismatch {
            variant_id: request.variant_id,
            entry: request.entry,
            contract_hash: request.contract_hash,
        },
        Some(libc::EFAULT) => InjectError::NotExecutable { pid, target },
        Some(libc::ESTALE) => InjectError::BytesChanged {
            pid,
            target,
            expected: hex(&request.expected),
        },
        Some(libc::EEXIST) => InjectError::AlreadyPatched { pid, target },
        Some(libc::EADDRINUSE) => InjectError::AddressInUse {
            pid,
            segment_addr: request.imports.as_ref().map_or(0, |i| i.segment_addr),
        },
        Some(libc::ENOSPC) => InjectError::NoAddressSpace { pid, target },
        Some(libc::EBUSY) => InjectError::Busy { pid },
        Some(libc::EDEADLK) => InjectError::ThreadHeld {
            pid,
            thread: held_thread(pid),
        },
        Some(libc::EUSERS) => InjectError::SharedAddressSpace { pid },
        Some(libc::ETXTBSY) => InjectError::SiteModified { pid, target },
        Some(libc::ENOEXEC) => InjectError::AnonymousCode { pid, target },
        Some(libc::EINTR) => InjectError::Interrupted {
            what: "the injection",
        },
        Some(libc::EAGAIN) => InjectError::ThreadsKeepAppearing { pid },
        Some(libc::ENOTTY) => InjectError::NotSupported {
            what: "ADAPT_IOC_INJECT",
        },
        _ => InjectError::Io {
            what: "ADAPT_IOC_INJECT",
            source,
        },
    }
}

/// Restores the original bytes of injection `id` and unmaps its segment.
pub fn revert(device: &Device, id: u64) -> Result<Reverted, InjectError> {
    let mut arg = abi::AdaptRevert {
        id,
        ..Default::default()
    };
    device
        .ioctl(abi::ADAPT_IOC_REVERT, &mut arg)
        .map_err(|source| revert_error(id, source))?;
    Ok(Reverted {
        id,
        attempts: arg.attempts,
        pause_ns: arg.pause_ns,
    })
}

fn revert_error(id: u64, source: io::Error) -> InjectError {
    match source.raw_os_error() {
        Some(libc::ENOENT) => InjectError::NoSuchInjection { id },
        Some(libc::EBUSY) => InjectError::RevertBusy { id },
        Some(libc::ESTALE) => InjectError::RevertStale { id },
        Some(libc::EDEADLK) => InjectError::RevertHeld { id },
        Some(libc::EUSERS) => InjectError::RevertShared { id },
        Some(libc::EINTR) => InjectError::Interrupted { what: "the revert" },
        Some(libc::EAGAIN) => InjectError::RevertBusy { id },
        _ => common_error("ADAPT_IOC_REVERT", source),
    }
}

/// Names a stopped, traced or frozen thread of `pid` ("thread T"), from
/// `/proc/PID/task/*/stat` (state `T` or `t`; frozen threads show `D`).
fn held_thread(pid: u32) -> String {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "a thread".to_owned();
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The state follows the command name, which is in parentheses and
        // may itself contain ") ".
        let state = stat.rfind(") ").and_then(|i| stat[i + 2..].chars().next());
        if matches!(state, Some('T') | Some('t')) {
            return format!("thread {}", entry.file_name().to_string_lossy());
        }
    }
    "a thread".to_owned()
}

/// The injections (live and stale), all or only those into `pid`, in the
/// module's order.
pub fn list(device: &Device, pid: Option<u32>) -> Result<Vec<Injection>, InjectError> {
    list_with(device, pid, false).map(|(injections, _)| injections)
}

/// [`list`], with the retired segments too (state `retired`), and how many
/// retired segments there are.
pub fn list_with_retired(
    device: &Device,
    pid: Option<u32>,
) -> Result<(Vec<Injection>, u32), InjectError> {
    list_with(device, pid, true)
}

fn list_with(
    device: &Device,
    pid: Option<u32>,
    retired: bool,
) -> Result<(Vec<Injection>, u32), InjectError> {
    // Ask for the count first, then for that many (plus room for injections
    // made in between); retry if it grew further.
    let mut capacity = 0u32;
    loop {
        let mut infos = vec![abi::AdaptInjectionInfo::default(); capacity as usize];
        let mut arg = abi::AdaptInjectionList {
            entries: infos.as_mut_ptr() as u64,
            capacity,
            pid: pid.unwrap_or(0),
            flags: if retired {
                abi::ADAPT_INJECTION_LIST_F_RETIRED
            } else {
                0
            },
            ..Default::default()
        };
        // The kernel writes at most `capacity` entries into `infos`, which
        // has exactly that many.
        device
            .ioctl(abi::ADAPT_IOC_INJECTION_LIST, &mut arg)
            .map_err(|source| common_error("ADAPT_IOC_INJECTION_LIST", source))?;
        let wanted = if retired {
            arg.total.saturating_add(arg.retired)
        } else {
            arg.total
        };
        if wanted <= capacity {
            let count = (arg.count as usize).min(infos.len());
            let injections = infos[..count].iter().map(Injection::from_info).collect();
            return Ok((injections, arg.retired));
        }
        capacity = wanted.saturating_add(16).min(abi::ADAPT_POLICY_MAX_TOTAL);
    }
}

/// Errnos every injection command may see.
pub(crate) fn common_error(what: &'static str, source: io::Error) -> InjectError {
    match source.raw_os_error() {
        Some(libc::ENOTTY) => InjectError::NotSupported { what },
        _ => InjectError::Io { what, source },
    }
}

fn name_lossy(field: &[u8]) -> String {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> InjectRequest {
        InjectRequest {
            pid: 42,
            target: 0x7f00_0000_1000,
            variant_id: 3,
            entry: 1,
            contract_hash: 0xfeed_beef,
            expected: vec![0x89, 0xd2, 0xe9, 1, 2, 3, 4],
            automatic: false,
            imports: None,
        }
    }

    fn errno(e: i32) -> io::Error {
        io::Error::from_raw_os_error(e)
    }

    #[test]
    fn the_request_pads_expected_bytes_and_zeroes_the_rest() {
        let r = request().to_abi().unwrap();
        assert_eq!(
            (r.pid, r.flags, r.target, r.variant_id, r.entry),
            (42, 0, 0x7f00_0000_1000, 3, 1)
        );
        assert_eq!((r.contract_hash, r.patch_len), (0xfeed_beef, 7));
        assert_eq!(&r.expected[..7], &[0x89, 0xd2, 0xe9, 1, 2, 3, 4]);
        assert_eq!(&r.expected[7..], &[0; 9]);
        assert_eq!(
            (
                r.id,
                r.segment_addr,
                r.pause_ns,
                r.threads,
                r.attempts,
                r.reserved
            ),
            (0, 0, 0, 0, 0, [0; 4])
        );
        let mut auto = request();
        auto.automatic = true;
        assert_eq!(auto.to_abi().unwrap().flags, abi::ADAPT_INJECT_F_AUTO);
    }

    #[test]
    fn patch_lengths_outside_five_to_sixteen_are_refused_before_the_ioctl() {
        for len in [0, 4, 17, 32] {
            let mut r = request();
            r.expected = vec![0x90; len];
            assert!(
                matches!(r.to_abi(), Err(InjectError::BadPatchLength { .. })),
                "{len}"
            );
        }
        for len in [5, 16] {
            let mut r = request();
            r.expected = vec![0x90; len];
            assert_eq!(r.to_abi().unwrap().patch_len as usize, len);
        }
    }

    #[test]
    fn every_documented_inject_errno_has_its_own_error() {
        let r = request();
        let cases = [
            (libc::ESRCH, "no-such-process"),
            (libc::EOPNOTSUPP, "kernel-thread"),
            (libc::EPERM, "not-permitted"),
            (libc::EACCES, "policy-disabled"),
            (libc::EDQUOT, "limit-reached"),
            (libc::ENOENT, "no-such-variant"),
            (libc::EINVAL, "bad-request"),
            (libc::ENODEV, "unsupported-variant"),
            (libc::EPROTO, "contract-mismatch"),
            (libc::EFAULT, "not-executable"),
            (libc::ESTALE, "bytes-changed"),
            (libc::EEXIST, "already-patched"),
            (libc::ENOSPC, "no-address-space"),
            (libc::EBUSY, "busy"),
            (libc::EDEADLK, "thread-held"),
            (libc::EUSERS, "shared-address-space"),
            (libc::ETXTBSY, "site-modified"),
            (libc::ENOEXEC, "anonymous-code"),
            (libc::EINTR, "interrupted"),
            (libc::EAGAIN, "threads-keep-appearing"),
            (libc::ENOTTY, "abi-mismatch"),
            (libc::EIO, "io"),
        ];
        let mut messages = std::collections::HashSet::new();
        for (e, kind) in cases {
            let err = inject_error(&r, None, errno(e));
            assert_eq!(err.kind(), kind, "errno {e}: {err}");
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(
                messages.insert(msg.clone()),
                "two errnos share a message: {msg}"
            );
        }
        let msg = inject_error(&r, None, errno(libc::ESTALE)).to_string();
        assert!(
            msg.contains("89d2e901020304")
                && msg.contains("0x7f0000001000")
                && msg.contains("pid 42"),
            "{msg}"
        );
        let msg = inject_error(&r, None, errno(libc::EPROTO)).to_string();
        assert!(
            msg.contains("00000000feedbeef") && msg.contains("--assume-contract"),
            "{msg}"
        );
        assert!(inject_error(&r, None, errno(libc::EACCES))
            .to_string()
            .contains("adaptctl policy set --enable"));
    }

    #[test]
    fn eacces_of_an_automatic_request_under_an_enabled_policy_is_a_quarantine() {
        let mut r = request();
        let enabled = abi::AdaptPolicy {
            flags: abi::ADAPT_POLICY_F_ENABLED,
            max_per_process: 2,
            max_total: 5,
            ..Default::default()
        };
        let restricted = abi::AdaptPolicy {
            ncomms: 1,
            ..enabled
        };
        let disabled = abi::AdaptPolicy {
            flags: 0,
            ..enabled
        };
        // A manual request: the switch, else the targets.
        assert!(matches!(
            inject_error(&r, Some(disabled), errno(libc::EACCES)),
            InjectError::PolicyDisabled
        ));
        let err = inject_error(&r, Some(restricted), errno(libc::EACCES));
        assert!(
            matches!(err, InjectError::TargetNotAllowed { pid: 42, also: "" }),
            "{err}"
        );
        assert!(err.to_string().contains("adaptctl policy show"), "{err}");
        // An automatic one may also meet a quarantined variant.
        r.automatic = true;
        let err = inject_error(&r, Some(enabled), errno(libc::EACCES));
        assert!(
            matches!(err, InjectError::Quarantined { variant_id: 3 }),
            "{err}"
        );
        let err = inject_error(&r, Some(restricted), errno(libc::EACCES));
        assert!(
            err.to_string().contains("or the variant is quarantined"),
            "{err}"
        );
        assert!(matches!(
            inject_error(&r, Some(disabled), errno(libc::EACCES)),
            InjectError::PolicyDisabled
        ));
        // EDQUOT names the limits in force.
        let err = inject_error(&r, Some(enabled), errno(libc::EDQUOT));
        assert!(
            err.to_string().contains("at most 2 per process, 5 in all"),
            "{err}"
        );
    }

    #[test]
    fn revert_errnos() {
        let err = revert_error(7, errno(libc::ENOENT));
        assert!(matches!(err, InjectError::NoSuchInjection { id: 7 }));
        assert_eq!(err.kind(), "no-such-injection");
        assert!(err.to_string().contains("no live injection has id 7"));
        let err = revert_error(7, errno(libc::EBUSY));
        assert!(matches!(err, InjectError::RevertBusy { id: 7 }));
        assert!(err.to_string().contains("still live"));
        assert!(matches!(
            revert_error(7, errno(libc::ENOTTY)),
            InjectError::NotSupported { .. }
        ));
    }

    #[test]
    fn list_entries_are_decoded() {
        let mut info = abi::AdaptInjectionInfo {
            id: 11,
            pid: 99,
            state: abi::ADAPT_INJECTION_LIVE,
            target: 0x1000,
            variant_id: 4,
            segment_addr: 0x2000,
            segment_len: 8192,
            entry: 0,
            patch_len: 7,
            injected_ns: 5,
            pause_ns: 6,
            segment: abi::name_field("crc32").unwrap(),
            variant: abi::name_field("pclmul").unwrap(),
            ..Default::default()
        };
        info.original[..7].copy_from_slice(&[0x89, 0xd2, 0xe9, 1, 2, 3, 4]);
        info.original[7] = 0xff; // beyond patch_len: not shown
        let i = Injection::from_info(&info);
        assert_eq!(
            (
                i.id,
                i.pid,
                i.state.as_str(),
                i.segment.as_str(),
                i.variant.as_str()
            ),
            (11, 99, "live", "crc32", "pclmul")
        );
        assert_eq!(i.original, "89d2e901020304");
        info.patch_len = 200; // a garbage length cannot make it read out of bounds
        info.state = 9;
        let i = Injection::from_info(&info);
        assert_eq!(i.original.len(), 32);
        assert_eq!(i.state, "state9");
    }
}
