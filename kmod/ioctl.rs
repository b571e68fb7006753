// SPDX-License-Identifier: GPL-2.0

//! ioctl dispatch: every command's argument is validated here before any
//! state is touched (sizes through the ioctl number, `flags` and `reserved`
//! fields, pointers through the uaccess helpers).

use crate::abi;
use crate::device::Client;
use crate::library::Loaded;
use crate::perf::EventKind;
use crate::task;
use core::mem::size_of;
use kernel::{
    prelude::*,
    types::{AsBytes, FromBytes},
    uaccess::UserSlice,
};

/// Marks ABI structs as plain bytes for the uaccess helpers.
macro_rules! plain_abi_struct {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: The ABI structs are `#[repr(C)]`, made only of integers and
        // arrays of integers, with no implicit padding (the userspace layout
        // tests pin each size to the sum of its fields): every bit pattern
        // is valid and every byte is initialized.
        unsafe impl FromBytes for $t {}
        // SAFETY: As above.
        unsafe impl AsBytes for $t {}
    )*};
}

plain_abi_struct!(
    abi::AdaptVersion,
    abi::AdaptProfileStart,
    abi::AdaptProfileStop,
    abi::AdaptProfileRead,
    abi::AdaptSample,
    abi::AdaptLibraryLoad,
    abi::AdaptLibraryUnload,
    abi::AdaptLibraryList,
    abi::AdaptLibraryInfo,
    abi::AdaptSegmentReloc,
    abi::AdaptSegmentEntry,
    abi::AdaptInject,
    abi::AdaptRevert,
    abi::AdaptInjectionList,
    abi::AdaptInjectionInfo,
    abi::AdaptPolicy,
);

/// Handles one ioctl on an open `/dev/adapt`.
///
/// A foreign type or an unknown command number is `ENOTTY`; a known number
/// with another argument size or direction is `EINVAL`.
///
/// Authority is checked per call, not only at `open`: the file may have
/// been passed (`SCM_RIGHTS`, inheritance) to a process without it. Every
/// command but `VERSION` needs `CAP_SYS_ADMIN` in the caller as well as in
/// the opener (checked at open; the file's credentials do not change), and
/// commands on a target also `CAP_SYS_PTRACE` ([`task::traceable_process`]).
pub(crate) fn dispatch(client: &Client, cmd: u32, arg: usize) -> Result<isize> {
    if abi::ioc_type(cmd) != abi::ADAPT_IOC_MAGIC {
        return Err(ENOTTY);
    }
    if abi::ioc_nr(cmd) != abi::ADAPT_NR_VERSION && !task::capable(crate::bindings::CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    match abi::ioc_nr(cmd) {
        abi::ADAPT_NR_VERSION => {
            expect_cmd(cmd, abi::ADAPT_IOC_VERSION)?;
            version(client, arg)
        }
        abi::ADAPT_NR_PROFILE_START => {
            expect_cmd(cmd, abi::ADAPT_IOC_PROFILE_START)?;
            profile_start(client, arg)
        }
        abi::ADAPT_NR_PROFILE_STOP => {
            expect_cmd(cmd, abi::ADAPT_IOC_PROFILE_STOP)?;
            profile_stop(client, arg)
        }
        abi::ADAPT_NR_PROFILE_READ => {
            expect_cmd(cmd, abi::ADAPT_IOC_PROFILE_READ)?;
            profile_read(client, arg)
        }
        abi::ADAPT_NR_LIBRARY_LOAD => {
            expect_cmd(cmd, abi::ADAPT_IOC_LIBRARY_LOAD)?;
            library_load(client, arg)
        }
        abi::ADAPT_NR_LIBRARY_UNLOAD => {
            expect_cmd(cmd, abi::ADAPT_IOC_LIBRARY_UNLOAD)?;
            library_unload(client, arg)
        }
        abi::ADAPT_NR_LIBRARY_LIST => {
            expect_cmd(cmd, abi::ADAPT_IOC_LIBRARY_LIST)?;
            library_list(client, arg)
        }
        abi::ADAPT_NR_INJECT => {
            expect_cmd(cmd, abi::ADAPT_IOC_INJECT)?;
            inject(client, arg)
        }
        abi::ADAPT_NR_REVERT => {
            expect_cmd(cmd, abi::ADAPT_IOC_REVERT)?;
            revert(client, arg)
        }
        abi::ADAPT_NR_INJECTION_LIST => {
            expect_cmd(cmd, abi::ADAPT_IOC_INJECTION_LIST)?;
            injection_list(client, arg)
        }
        abi::ADAPT_NR_POLICY_GET => {
            expect_cmd(cmd, abi::ADAPT_IOC_POLICY_GET)?;
            policy_get(client, arg)
        }
        abi::ADAPT_NR_POLICY_SET => {
            expect_cmd(cmd, abi::ADAPT_IOC_POLICY_SET)?;
            policy_set(client, arg)
        }
        _ => Err(ENOTTY),
    }
}

/// Copies `items` to the user array at `user` (nothing when empty).
fn write_items<T: AsBytes>(user: u64, items: &[T]) -> Result {
    if items.is_empty() {
        return Ok(());
    }
    let user = usize::try_from(user).map_err(|_| EFAULT)?;
    let bytes = core::mem::size_of_val(items);
    // SAFETY: `T: AsBytes` (the ABI structs, see `plain_abi_struct!`): every
    // byte of `items` is initialized, so the slice may be viewed as bytes.
    let raw = unsafe { core::slice::from_raw_parts(items.as_ptr().cast::<u8>(), bytes) };
    UserSlice::new(user, bytes).writer().write_slice(raw)
}

/// Writes `len` zero bytes at user address `user` (checks that it is
/// writable).
fn zero_user(user: u64, len: usize) -> Result {
    if len == 0 {
        return Ok(());
    }
    let user = usize::try_from(user).map_err(|_| EFAULT)?;
    let zeros = [0u8; 256];
    let mut writer = UserSlice::new(user, len).writer();
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len());
        writer.write_slice(zeros.get(..n).ok_or(EINVAL)?)?;
        left -= n;
    }
    Ok(())
}

fn expect_cmd(cmd: u32, expected: u32) -> Result {
    if cmd == expected {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

fn version(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(arg, size_of::<abi::AdaptVersion>()).reader_writer();
    let request: abi::AdaptVersion = reader.read()?;
    if request.flags != 0 || request.reserved != [0; 4] {
        return Err(EINVAL);
    }

    let mut reply = abi::AdaptVersion {
        abi_version: abi::ADAPT_ABI_VERSION,
        capabilities: client.shared.capabilities,
        ..Default::default()
    };
    // Copy at most all but the last byte, so the string stays NUL-terminated.
    let room = reply.module_version.len().saturating_sub(1);
    for (dst, src) in reply
        .module_version
        .iter_mut()
        .zip(crate::MODULE_VERSION.bytes().take(room))
    {
        *dst = src;
    }
    writer.write(&reply)?;
    Ok(0)
}

fn event_code(kind: EventKind) -> u32 {
    match kind {
        EventKind::HardwareCycles => abi::ADAPT_EVENT_HW_CYCLES,
        EventKind::SoftwareCpuClock => abi::ADAPT_EVENT_SW_CPU_CLOCK,
    }
}

fn profile_start(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(arg, size_of::<abi::AdaptProfileStart>()).reader_writer();
    let mut request: abi::AdaptProfileStart = reader.read()?;
    if request.flags & !abi::ADAPT_PROFILE_F_ALL != 0 || request.reserved != [0; 4] {
        return Err(EINVAL);
    }
    let freq_hz = match request.freq_hz {
        0 => abi::ADAPT_PROFILE_FREQ_DEFAULT,
        hz if (abi::ADAPT_PROFILE_FREQ_MIN..=abi::ADAPT_PROFILE_FREQ_MAX).contains(&hz) => hz,
        _ => return Err(ERANGE),
    };
    let target = task::traceable_process(request.pid)?;
    let (session, event) =
        client
            .shared
            .profiler
            .start(client.id, target, freq_hz, request.flags)?;
    request.session = session;
    request.event = event_code(event);
    request.freq_hz = freq_hz;
    if let Err(err) = writer.write(&request) {
        // The caller cannot learn the id: do not leave the session running.
        let _ = client.shared.profiler.stop(session);
        return Err(err);
    }
    Ok(0)
}

fn profile_stop(client: &Client, arg: usize) -> Result<isize> {
    let request: abi::AdaptProfileStop =
        UserSlice::new(arg, size_of::<abi::AdaptProfileStop>()).reader().read()?;
    if request.flags != 0 || request.reserved0 != 0 || request.reserved != [0; 2] {
        return Err(EINVAL);
    }
    client.shared.profiler.stop(request.session)?;
    Ok(0)
}

fn profile_read(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(arg, size_of::<abi::AdaptProfileRead>()).reader_writer();
    let mut request: abi::AdaptProfileRead = reader.read()?;
    if request.flags != 0 || request.reserved != [0; 2] {
        return Err(EINVAL);
    }
    if request.capacity > abi::ADAPT_PROFILE_READ_MAX {
        return Err(EINVAL);
    }
    let capacity = request.capacity as usize;
    // Samples are consumed by the read: make sure they can be delivered
    // first (a bad buffer fails before any sample is taken).
    zero_user(request.samples, capacity * size_of::<abi::AdaptSample>())?;
    let mut samples = KVec::with_capacity(capacity, GFP_KERNEL)?;
    let outcome = client
        .shared
        .profiler
        .read(request.session, &mut samples, capacity)?;
    // Thread ids are recorded in the initial pid namespace (the overflow
    // handler cannot translate); report them in the caller's.
    for sample in samples.iter_mut() {
        // SAFETY: Looks a number up under RCU; no pointer is kept.
        sample.tid = unsafe { crate::bindings::adapt_tid_to_caller_ns(sample.tid) };
    }
    write_items(request.samples, &samples)?;

    // At most READ_MAX samples were requested, so the count fits.
    request.count = samples.len() as u32;
    request.recorded = outcome.recorded;
    request.dropped = outcome.dropped;
    request.state = if outcome.target_exited {
        abi::ADAPT_PROFILE_TARGET_EXITED
    } else {
        abi::ADAPT_PROFILE_RUNNING
    };
    request.event = event_code(outcome.event);
    request.freq_hz = outcome.freq_hz;
    writer.write(&request)?;
    Ok(0)
}

fn library_load(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(arg, size_of::<abi::AdaptLibraryLoad>()).reader_writer();
    let mut request: abi::AdaptLibraryLoad = reader.read()?;
    let outcome = client.shared.library.load(&request)?;
    let (id, result) = match outcome {
        Loaded::New(id) => (id, Ok(0)),
        Loaded::Existing(id) => (id, Err(EEXIST)),
    };
    request.id = id;
    if let Err(err) = writer.write(&request) {
        if let Loaded::New(id) = outcome {
            // The caller cannot learn the id: do not keep what it cannot name.
            let _ = client.shared.library.unload(id);
        }
        return Err(err);
    }
    result
}

fn library_unload(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(arg, size_of::<abi::AdaptLibraryUnload>()).reader_writer();
    let mut request: abi::AdaptLibraryUnload = reader.read()?;
    if request.flags & !abi::ADAPT_LIBRARY_UNLOAD_F_FORCE != 0
        || request.users != 0
        || request.reserved != [0; 2]
    {
        return Err(EINVAL);
    }
    if request.flags & abi::ADAPT_LIBRARY_UNLOAD_F_FORCE != 0 {
        // Revert the injections that use it first; one that cannot be
        // reverted keeps the variant loaded (EBUSY and its user count below).
        let _ = client.shared.injector.revert_variant(request.id);
    }
    match client.shared.library.unload(request.id) {
        Ok(()) => Ok(0),
        Err((err, users)) => {
            request.users = users;
            writer.write(&request)?;
            Err(err)
        }
    }
}

fn library_list(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(arg, size_of::<abi::AdaptLibraryList>()).reader_writer();
    let mut request: abi::AdaptLibraryList = reader.read()?;
    if request.flags != 0 || request.count != 0 || request.total != 0 || request.reserved != [0; 2] {
        return Err(EINVAL);
    }
    if request.capacity > abi::ADAPT_LIBRARY_MAX_VARIANTS {
        return Err(EINVAL);
    }
    let (infos, total) = client.shared.library.list(request.capacity as usize)?;
    write_items(request.entries, &infos)?;
    // Both are at most ADAPT_LIBRARY_MAX_VARIANTS.
    request.count = infos.len() as u32;
    request.total = total as u32;
    writer.write(&request)?;
    Ok(0)
}

fn inject(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) = UserSlice::new(arg, size_of::<abi::AdaptInject>()).reader_writer();
    let mut request: abi::AdaptInject = reader.read()?;
    // `segment_addr` is an input too (variants with imports); the injector
    // checks it against the variant.
    if request.id != 0 || request.pause_ns != 0 || request.threads != 0 || request.attempts != 0 {
        return Err(EINVAL);
    }
    let shared = &client.shared;
    let injected = shared.injector.inject(&shared.library, &request)?;
    request.id = injected.id;
    request.segment_addr = injected.segment_addr;
    request.pause_ns = injected.pause_ns;
    request.threads = injected.threads;
    request.attempts = injected.attempts;
    // The injection stands even if the caller's buffer went away; it is
    // listed and can be reverted by id.
    writer.write(&request)?;
    Ok(0)
}

fn revert(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) = UserSlice::new(arg, size_of::<abi::AdaptRevert>()).reader_writer();
    let mut request: abi::AdaptRevert = reader.read()?;
    if request.flags != 0 || request.attempts != 0 || request.pause_ns != 0 || request.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let (pause_ns, attempts) = client.shared.injector.revert(request.id)?;
    request.pause_ns = pause_ns;
    request.attempts = attempts;
    writer.write(&request)?;
    Ok(0)
}

fn injection_list(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) = UserSlice::new(arg, size_of::<abi::AdaptInjectionList>()).reader_writer();
    let mut request: abi::AdaptInjectionList = reader.read()?;
    if request.count != 0
        || request.total != 0
        || request.retired != 0
        || request.reserved != 0
        || request.flags & !abi::ADAPT_INJECTION_LIST_F_RETIRED != 0
    {
        return Err(EINVAL);
    }
    if request.capacity > abi::ADAPT_POLICY_MAX_TOTAL {
        return Err(EINVAL);
    }
    let with_retired = request.flags & abi::ADAPT_INJECTION_LIST_F_RETIRED != 0;
    let listed = client
        .shared
        .injector
        .list(request.pid, request.capacity as usize, with_retired)?;
    write_items(request.entries, &listed.entries)?;
    // The count is at most the capacity (at most 4096); the totals are
    // bounded by the injection limits and the per-process retired limit.
    request.count = listed.entries.len() as u32;
    request.total = u32::try_from(listed.total).unwrap_or(u32::MAX);
    request.retired = u32::try_from(listed.retired).unwrap_or(u32::MAX);
    writer.write(&request)?;
    Ok(0)
}

/// Reads a policy from userspace into the heap (it is ~3 KiB: too big for
/// the kernel stack).
fn read_policy(arg: usize) -> Result<KBox<abi::AdaptPolicy>> {
    let mut policy = KBox::<abi::AdaptPolicy>::new_uninit(GFP_KERNEL)?;
    // SAFETY: Viewing the uninitialized allocation as bytes to be filled.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(
            policy.as_mut_ptr().cast::<core::mem::MaybeUninit<u8>>(),
            size_of::<abi::AdaptPolicy>(),
        )
    };
    UserSlice::new(arg, size_of::<abi::AdaptPolicy>()).reader().read_raw(bytes)?;
    // SAFETY: Every byte was written by `read_raw`, and `AdaptPolicy` is
    // plain bytes (`plain_abi_struct!`): any bit pattern is a valid value.
    Ok(unsafe { policy.assume_init() })
}

fn policy_get(client: &Client, arg: usize) -> Result<isize> {
    let mut policy = read_policy(arg)?;
    if *policy != abi::AdaptPolicy::default() {
        return Err(EINVAL);
    }
    client.shared.injector.policy_into(&mut policy);
    UserSlice::new(arg, size_of::<abi::AdaptPolicy>())
        .writer()
        .write(&*policy)?;
    Ok(0)
}

fn policy_set(client: &Client, arg: usize) -> Result<isize> {
    let policy = read_policy(arg)?;
    crate::injector::validate_policy(&policy)?;
    client.shared.injector.set_policy(policy);
    Ok(0)
}
