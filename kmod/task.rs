// SPDX-License-Identifier: GPL-2.0

//! References to processes: `struct pid` and `struct task_struct`, wrapped
//! once, plus the checks every request on a target goes through.

use crate::bindings;
use core::ptr::NonNull;
use kernel::prelude::*;

/// A counted reference to a `struct pid` that names a process.
///
/// Holding it keeps the `struct pid` alive, not the process: the process
/// may exit, and [`PidRef::process`] then returns `None`. Comparing the
/// pointer (not the number) is how the profiler recognizes the target's
/// threads, so a recycled pid number can never be mistaken for it.
///
/// # Invariants
///
/// `pid` holds one reference, taken by `find_get_pid`, put in `Drop`.
pub(crate) struct PidRef {
    pid: NonNull<bindings::pid>,
}

// SAFETY: `struct pid` references may be taken, used and put from any task;
// its reference count is atomic.
unsafe impl Send for PidRef {}
// SAFETY: Only the pointer value is shared; every operation through it is
// safe from concurrent tasks.
unsafe impl Sync for PidRef {}

impl PidRef {
    /// Looks up `nr` in the calling task's pid namespace.
    pub(crate) fn find(nr: i32) -> Option<Self> {
        // SAFETY: `find_get_pid` takes any number and returns a counted
        // reference or null.
        let pid = unsafe { bindings::find_get_pid(nr) };
        NonNull::new(pid).map(|pid| Self { pid })
    }

    /// The process (thread group leader) this pid names, if it is one and
    /// it still exists.
    pub(crate) fn process(&self) -> Option<TaskRef> {
        // SAFETY: `self.pid` is a valid, counted `struct pid`.
        let task = unsafe { bindings::adapt_pid_get_process(self.pid.as_ptr()) };
        NonNull::new(task).map(|task| TaskRef { task })
    }

    /// Whether the process still exists (has not been reaped).
    pub(crate) fn has_process(&self) -> bool {
        // SAFETY: `self.pid` is a valid, counted `struct pid`.
        unsafe { bindings::adapt_pid_has_process(self.pid.as_ptr()) }
    }

    /// The address that identifies this pid, for comparisons only.
    pub(crate) fn as_ptr(&self) -> *const bindings::pid {
        self.pid.as_ptr()
    }

    /// Another counted reference to the same `struct pid`.
    pub(crate) fn clone_ref(&self) -> PidRef {
        // SAFETY: `self.pid` is valid and counted; this takes one more
        // reference, owned by the new value.
        unsafe { bindings::adapt_pid_get(self.pid.as_ptr()) };
        PidRef { pid: self.pid }
    }

    /// Its number in the caller's pid namespace (0: not visible there).
    pub(crate) fn vnr(&self) -> u32 {
        // SAFETY: `self.pid` is a valid, counted `struct pid`; the shim reads
        // the current task's namespace.
        unsafe { bindings::adapt_pid_vnr(self.pid.as_ptr()) }
    }

    /// A live thread of the process that uses `mm` (any address space when
    /// `None`): the process lives on in its other threads after its leader
    /// called `pthread_exit`, and `None` means it exited or exec'd.
    pub(crate) fn live_thread(&self, mm: Option<&MmRef>) -> Option<TaskRef> {
        self.process()?.group_thread_with_mm(mm)
    }
}

impl Drop for PidRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { bindings::put_pid(self.pid.as_ptr()) };
    }
}

/// A counted reference to a task.
///
/// # Invariants
///
/// `task` holds one reference, put in `Drop`.
pub(crate) struct TaskRef {
    task: NonNull<bindings::task_struct>,
}

// SAFETY: Task references may be used and put from any task context.
unsafe impl Send for TaskRef {}
// SAFETY: Every method only reads through the counted pointer.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Whether this is a kernel thread (no user address space to touch).
    pub(crate) fn is_kernel_thread(&self) -> bool {
        // SAFETY: `self.task` is a valid, counted task.
        unsafe { bindings::adapt_task_is_kthread(self.task.as_ptr()) }
    }

    /// Whether the task's memory may be inspected by a tracer, as for core
    /// dumps (`SUID_DUMP_USER`): false for setuid programs and for tasks
    /// that made themselves non-dumpable, and once the address space is gone.
    pub(crate) fn is_dumpable(&self) -> bool {
        // SAFETY: `self.task` is a valid, counted task.
        unsafe { bindings::adapt_task_is_dumpable(self.task.as_ptr()) }
    }
}

impl TaskRef {
    /// The calling task.
    pub(crate) fn current() -> TaskRef {
        let current: &kernel::task::Task = kernel::current!();
        // `Task` is a transparent wrapper of `struct task_struct`.
        let raw = (current as *const kernel::task::Task).cast_mut().cast::<bindings::task_struct>();
        // SAFETY: `current` is valid for the duration of the call; taking
        // a reference keeps it so for as long as the `TaskRef` lives.
        unsafe { bindings::adapt_task_get(raw) };
        TaskRef {
            // SAFETY: `current` is never null.
            task: unsafe { NonNull::new_unchecked(raw) },
        }
    }

    /// A thread of this task's group that uses `mm` (with `None`: any
    /// address space) and is not exiting.
    pub(crate) fn group_thread_with_mm(&self, mm: Option<&MmRef>) -> Option<TaskRef> {
        let mm = mm.map_or(core::ptr::null_mut(), |m| m.mm.as_ptr());
        // SAFETY: `self.task` is valid and counted; `mm` is null or counted.
        let task = unsafe { bindings::adapt_group_thread_with_mm(self.task.as_ptr(), mm) };
        NonNull::new(task).map(|task| TaskRef { task })
    }

    /// Whether the task is stopped, traced or frozen: it would not reach a
    /// rendezvous until someone else resumes it.
    pub(crate) fn is_held(&self) -> bool {
        // SAFETY: `self.task` is a valid, counted task.
        unsafe { bindings::adapt_task_is_held(self.task.as_ptr()) }
    }

    /// Whether the task runs with a 32-bit address space.
    pub(crate) fn is_compat(&self) -> bool {
        // SAFETY: `self.task` is a valid, counted task.
        unsafe { bindings::adapt_task_is_compat(self.task.as_ptr()) }
    }

    /// Whether a user task outside this task's thread group uses `mm`.
    pub(crate) fn mm_has_foreign_user(&self, mm: &MmRef) -> bool {
        // SAFETY: Both are valid and counted.
        unsafe { bindings::adapt_mm_foreign_user(self.task.as_ptr(), mm.mm.as_ptr()) != 0 }
    }

    /// The raw task, for the wrappers of this module's C shim.
    pub(crate) fn as_ptr(&self) -> *mut bindings::task_struct {
        self.task.as_ptr()
    }

    /// References to every thread of this task's thread group; `E2BIG` when
    /// there are more than `max`.
    pub(crate) fn threads(&self, max: usize) -> Result<KVec<TaskRef>> {
        let mut raw = KVec::from_elem(core::ptr::null_mut(), max, GFP_KERNEL)?;
        let room = i32::try_from(max).map_err(|_| EINVAL)?;
        // SAFETY: `raw` has room for `max` pointers; the shim stores at most
        // that many, each with a reference we now own.
        let n = unsafe { bindings::adapt_process_threads(self.task.as_ptr(), raw.as_mut_ptr(), room) };
        let n = usize::try_from(n).unwrap_or(0);
        let mut threads = KVec::with_capacity(n.min(max), GFP_KERNEL)?;
        for &task in raw.iter().take(n.min(max)) {
            if let Some(task) = NonNull::new(task) {
                // Capacity was reserved above, so this cannot fail; if it
                // did, the reference would be put by the dropped value.
                let _ = threads.push(TaskRef { task }, GFP_KERNEL);
            }
        }
        if n > max {
            return Err(E2BIG);
        }
        Ok(threads)
    }

    /// The task's real uid (initial user namespace).
    pub(crate) fn uid(&self) -> u32 {
        // SAFETY: `self.task` is a valid, counted task.
        unsafe { bindings::adapt_task_uid(self.task.as_ptr()) }
    }

    /// The task's command name, NUL-padded.
    pub(crate) fn comm(&self) -> [u8; crate::abi::ADAPT_COMM_LEN] {
        let mut comm = [0u8; crate::abi::ADAPT_COMM_LEN];
        // SAFETY: `comm` has room for the length passed; the task is counted.
        unsafe { bindings::adapt_task_comm(self.task.as_ptr(), comm.as_mut_ptr(), comm.len() as u32) };
        comm
    }

    /// Whether the path of the task's executable is `path` (NUL-padded).
    pub(crate) fn exe_is(&self, path: &[u8; crate::abi::ADAPT_PATH_LEN]) -> Result<bool> {
        let mut buf = KVec::from_elem(0u8, crate::abi::ADAPT_PATH_LEN, GFP_KERNEL)?;
        // SAFETY: `buf` has room for the length passed; the task is counted.
        let ret = unsafe { bindings::adapt_task_exe_path(self.task.as_ptr(), buf.as_mut_ptr(), buf.len() as u32) };
        if ret != 0 {
            return Ok(false);
        }
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let want = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        Ok(buf.get(..len) == path.get(..want))
    }
}

/// A reference that keeps a `struct mm_struct` allocated (not its mappings),
/// used to recognize the address space an injection was made in.
///
/// # Invariants
///
/// `mm` holds one `mmgrab` reference, dropped in `Drop`.
pub(crate) struct MmRef {
    mm: NonNull<bindings::mm_struct>,
}

// SAFETY: mm_struct references are atomic counters; usable from any task.
unsafe impl Send for MmRef {}
// SAFETY: Only the pointer value is shared.
unsafe impl Sync for MmRef {}

impl MmRef {
    /// The current address space of `task`, if it has one.
    pub(crate) fn of(task: &TaskRef) -> Option<Self> {
        // SAFETY: `task` is valid; the shim takes the reference under
        // task_lock.
        let mm = unsafe { bindings::adapt_task_mm_grab(task.as_ptr()) };
        NonNull::new(mm).map(|mm| Self { mm })
    }
}

impl MmRef {
    /// The address that identifies this address space, for comparisons.
    pub(crate) fn as_ptr(&self) -> *const kernel::ffi::c_void {
        self.mm.as_ptr().cast_const().cast()
    }

    /// Another reference to the same address space.
    pub(crate) fn grab(&self) -> MmRef {
        // SAFETY: `self.mm` is valid and grabbed; this takes one more
        // `mmgrab` reference, owned by the new value.
        unsafe { bindings::adapt_mm_grab(self.mm.as_ptr()) };
        MmRef { mm: self.mm }
    }

    /// The raw address space, for the wrappers of this module's C shim.
    pub(crate) fn as_raw(&self) -> *mut bindings::mm_struct {
        self.mm.as_ptr()
    }

    /// Whether this is the calling task's address space.
    pub(crate) fn is_current(&self) -> bool {
        // SAFETY: Compares pointers only.
        unsafe { bindings::adapt_current_mm_is(self.mm.as_ptr()) }
    }
}

impl Drop for MmRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { bindings::adapt_mm_drop(self.mm.as_ptr()) };
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { bindings::adapt_task_put(self.task.as_ptr()) };
    }
}

/// Whether the calling task has `cap` in the initial user namespace.
pub(crate) fn capable(cap: u32) -> bool {
    // SAFETY: `capable` only reads the current task's credentials; the
    // capability numbers are small constants.
    unsafe { bindings::capable(cap as i32) }
}

/// A process the caller may act on: it exists, is a user process, is
/// dumpable, and the caller holds `CAP_SYS_PTRACE`. `nr` is read in the
/// caller's pid namespace.
///
/// Errors: `EPERM` (no `CAP_SYS_PTRACE`, or not dumpable), `ESRCH` (no such
/// process, or `nr` names a thread that is not a process, or every thread
/// has exited), `EOPNOTSUPP` (kernel thread).
pub(crate) fn traceable_process(nr: u32) -> Result<PidRef> {
    let (pid, _) = traceable_thread(nr)?;
    Ok(pid)
}

/// [`traceable_process`], and the live thread of it the checks were made
/// on (its leader may have called `pthread_exit`).
pub(crate) fn traceable_thread(nr: u32) -> Result<(PidRef, TaskRef)> {
    if !capable(bindings::CAP_SYS_PTRACE) {
        return Err(EPERM);
    }
    let nr = i32::try_from(nr).map_err(|_| ESRCH)?;
    if nr <= 0 {
        return Err(ESRCH);
    }
    let pid = PidRef::find(nr).ok_or(ESRCH)?;
    let leader = pid.process().ok_or(ESRCH)?;
    if leader.is_kernel_thread() {
        return Err(crate::errno::eopnotsupp());
    }
    let thread = leader.group_thread_with_mm(None).ok_or(ESRCH)?;
    if !thread.is_dumpable() {
        return Err(EPERM);
    }
    Ok((pid, thread))
}
