// SPDX-License-Identifier: GPL-2.0

//! Bringing every thread of a process to a known point.
//!
//! Each thread gets a task work queued with `TWA_SIGNAL`: a thread running
//! user code is interrupted, a thread sleeping interruptibly is woken (a
//! system call that cannot be restarted, such as `epoll_wait`, returns
//! `EINTR` to it), and every thread runs the work on its next return to user
//! mode, before it can execute another user instruction. The work records
//! where the thread will resume and parks it, killably, until
//! [`Gathered::release`]. Threads created meanwhile are found by enumerating
//! again once the known ones are parked (a parked thread cannot create
//! more); the rendezvous succeeds only after a round that found no new
//! thread.
//!
//! Work that needs the target's own context (mapping segment memory, which
//! acts on `current->mm`) is handed to the first thread that arrives (the
//! pre duty, [`Duty`]). If the request is given up before the duty's result
//! is collected, the thread that ran it undoes it ([`Duty::abandon`]).
//!
//! What cannot be waited for is refused before anything is queued: a
//! stopped, traced or frozen thread (`EDEADLK`), an address space used by a
//! task outside the thread group (`EUSERS`: `clone(CLONE_VM)` without
//! `CLONE_THREAD`, or a vfork child). Every queued work holds a reference on
//! the module (taken in the C shim, dropped by it as the work's last act), so
//! a work that never runs makes `rmmod` fail with `EBUSY` instead of hang.
//!
//! Lock order: `Rendezvous::state` is a leaf lock. Parked threads wait on
//! `Rendezvous::release` (a completion) without holding it.

use crate::bindings;
use crate::task::{MmRef, TaskRef};
use core::ptr;
use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{Arc, CondVar, CondVarTimeoutResult, Mutex},
    time::{msecs_to_jiffies, Ktime},
    types::Opaque,
};

/// Most threads a target may have.
pub(crate) const MAX_THREADS: usize = 4096;
/// How long threads have to reach the rendezvous.
const ARRIVAL_TIMEOUT_MS: i64 = 5000;
/// How often the caller looks for threads that stopped while it waits.
const ARRIVAL_SLICE_MS: u32 = 50;
/// Enumeration rounds before giving up on a process that keeps creating
/// threads faster than they can be parked.
const MAX_ROUNDS: usize = 8;

/// Whether rendezvous works are still queued on some thread. Only
/// meaningful in the module's exit path, where nothing else holds a
/// reference on the module: the loader's base reference is gone there, so
/// the count is -1 with no work queued.
pub(crate) fn works_pending_at_exit() -> bool {
    // SAFETY: Reads the module's reference count.
    unsafe { bindings::adapt_module_refs() >= 0 }
}

/// Something to do in the target's context before the rendezvous completes,
/// run by the first thread to arrive.
pub(crate) trait Duty: Send + 'static {
    /// Runs in a target thread; returns a value for the injector.
    fn run(&mut self) -> Result<u64>;
    /// The request was given up before it collected the value `run`
    /// returned: undo what `run` did. Runs in the same target thread.
    fn abandon(&mut self, value: u64);
}

/// Where one thread was when it arrived.
#[derive(Clone, Copy)]
pub(crate) struct ThreadPoint {
    /// The user instruction pointer it resumes at.
    pub(crate) user_ip: u64,
    /// Where it resumes instead if the system call it is in is restarted
    /// (the `syscall` instruction two bytes back); `user_ip` outside a
    /// system call.
    pub(crate) restart_ip: u64,
    /// The thread is exiting: it will not run user code again.
    pub(crate) exiting: bool,
}

impl ThreadPoint {
    /// Whether the thread may resume strictly inside `(start, end)`: in the
    /// middle of bytes being replaced.
    pub(crate) fn resumes_inside(&self, start: u64, end: u64) -> bool {
        let inside = |ip: u64| ip > start && ip < end;
        !self.exiting && (inside(self.user_ip) || inside(self.restart_ip))
    }

    /// Whether the thread may resume anywhere in `[start, end)`, its first
    /// byte included: inside code that is being retired (a trampoline).
    pub(crate) fn resumes_within(&self, start: u64, end: u64) -> bool {
        let inside = |ip: u64| ip >= start && ip < end;
        !self.exiting && (inside(self.user_ip) || inside(self.restart_ip))
    }
}

struct State<D> {
    arrived: usize,
    released: bool,
    /// A point could not be recorded: the rendezvous fails.
    failed: bool,
    /// A parked thread received a fatal signal and left.
    killed: bool,
    points: KVec<ThreadPoint>,
    pre_duty: Option<D>,
    pre_result: Option<Result<u64>>,
    /// The pre duty after it succeeded, with its value, until the caller
    /// collects the value (then it is only dropped) or gives up (then the
    /// thread that ran it undoes it).
    duty_done: Option<(D, u64)>,
    /// The caller took the pre duty's result: it owns what the duty did.
    collected: bool,
    /// The caller itself (a thread of the target) ran the pre duty.
    runner_is_caller: bool,
}

#[pin_data]
struct Rendezvous<D> {
    #[pin]
    state: Mutex<State<D>>,
    /// Arrivals, for the caller.
    #[pin]
    changed: CondVar,
    /// Completed once, at release; parked threads wait on it killably.
    #[pin]
    release: Opaque<bindings::completion>,
}

impl<D> Rendezvous<D> {
    fn release_ptr(&self) -> *mut bindings::completion {
        self.release.get()
    }

    /// Marks the rendezvous released and lets every parked thread go.
    fn open(&self) {
        {
            let mut state = self.state.lock();
            if state.released {
                return;
            }
            state.released = true;
        }
        // SAFETY: `release` was initialized in `gather` and lives as long as
        // `self`.
        unsafe { bindings::adapt_completion_release(self.release_ptr()) };
    }
}

impl<D: Duty> Rendezvous<D> {
    /// Runs in a target thread, from its task work.
    fn arrive(&self) {
        // SAFETY: These read the current task, which is a user thread
        // returning to user mode (or exiting).
        let exiting = unsafe { bindings::adapt_current_exiting() };
        let (mut user_ip, mut restart_ip) = (0u64, 0u64);
        // SAFETY: As above; both pointers are to locals.
        unsafe { bindings::adapt_current_user_ips(&mut user_ip, &mut restart_ip) };

        let mut state = self.state.lock();
        if state.released {
            return;
        }
        let mut ran = false;
        if !exiting {
            if let Some(mut duty) = state.pre_duty.take() {
                drop(state);
                let result = duty.run();
                state = self.state.lock();
                if state.released {
                    // The caller gave up meanwhile: nobody will use it.
                    drop(state);
                    if let Ok(value) = result {
                        duty.abandon(value);
                    }
                    return;
                }
                if let Ok(value) = result {
                    state.duty_done = Some((duty, value));
                    ran = true;
                }
                state.pre_result = Some(result);
            }
        }
        // Capacity for every queued thread was reserved before queuing; a
        // failed push fails the rendezvous rather than losing a point.
        if state
            .points
            .push(ThreadPoint { user_ip, restart_ip, exiting }, GFP_NOWAIT)
            .is_err()
        {
            state.failed = true;
        }
        state.arrived += 1;
        self.changed.notify_all();
        drop(state);
        if exiting {
            return;
        }
        // SAFETY: `release` was initialized in `gather`; `self` is kept
        // alive by the work's `Arc` for the duration.
        let woken = unsafe { bindings::adapt_completion_wait_killable(self.release_ptr()) };
        let mut state = self.state.lock();
        if woken != 0 {
            // A fatal signal: the thread leaves for do_exit() and runs no
            // more user code. The request fails.
            state.killed = true;
            self.changed.notify_all();
        }
        if ran && !state.collected {
            // Released (or killed) without the caller taking what the duty
            // made: undo it here, in the target's context.
            if let Some((mut duty, value)) = state.duty_done.take() {
                drop(state);
                duty.abandon(value);
            }
        }
    }
}

/// The header every queued work starts with: the C entry point finds the
/// typed body through `run`.
#[repr(C)]
struct WorkHeader {
    head: Opaque<bindings::callback_head>,
    run: unsafe fn(*mut WorkHeader),
}

/// The task work of one thread. `header` must stay the first field.
#[repr(C)]
struct ThreadWork<D> {
    header: WorkHeader,
    rendezvous: Arc<Rendezvous<D>>,
}

/// The body of every queued work, called by the shim's `adapt_work_entry`
/// (which then drops the module reference the work holds).
///
/// # Safety
///
/// Called once by `task_work_run` with the `callback_head` of a
/// `ThreadWork` leaked by [`queue`].
#[no_mangle]
pub(crate) unsafe extern "C" fn adapt_rust_work_run(head: *mut bindings::callback_head) {
    let header = head.cast::<WorkHeader>();
    // SAFETY: `head` is the first field of a `#[repr(C)]` `WorkHeader`,
    // itself the first field of a `ThreadWork<D>` whose `run` is
    // `run_work::<D>`.
    unsafe { ((*header).run)(header) };
}

/// # Safety
///
/// `header` is the header of a `ThreadWork<D>` leaked by [`queue`], not yet
/// reclaimed.
unsafe fn run_work<D: Duty>(header: *mut WorkHeader) {
    // SAFETY: By the function's contract; this is its only reclaim.
    let work = unsafe { KBox::from_raw(header.cast::<ThreadWork<D>>()) };
    work.rendezvous.arrive();
}

/// Queues the rendezvous work on `task`. `Ok(false)` when the task is
/// exiting and will not return to user mode.
fn queue<D: Duty>(task: &TaskRef, rendezvous: &Arc<Rendezvous<D>>) -> Result<bool> {
    let work = KBox::new(
        ThreadWork {
            header: WorkHeader {
                head: Opaque::uninit(),
                run: run_work::<D>,
            },
            rendezvous: rendezvous.clone(),
        },
        GFP_KERNEL,
    )?;
    let raw = KBox::into_raw(work);
    // SAFETY: `raw` is a valid, leaked `ThreadWork`; its `head` is
    // initialized by `init_task_work` inside the shim. On success the task
    // owns it until `adapt_rust_work_run` reclaims it.
    let ret = unsafe {
        bindings::adapt_task_work_queue(task.as_ptr(), Opaque::raw_get(ptr::addr_of!((*raw).header.head)))
    };
    if ret == 0 {
        return Ok(true);
    }
    // SAFETY: The work was not queued, so we still own it.
    drop(unsafe { KBox::from_raw(raw) });
    Ok(false)
}

/// Every thread of a process, parked.
pub(crate) struct Gathered<D: Duty> {
    rendezvous: Arc<Rendezvous<D>>,
    started: Ktime,
    /// Threads that arrived or were found exiting.
    pub(crate) threads: u32,
    /// Where they were.
    pub(crate) points: KVec<ThreadPoint>,
    /// Result of the pre duty, if one was given.
    pub(crate) pre_result: Option<Result<u64>>,
}

/// `EDEADLK`: a thread of the target is stopped, traced or frozen.
pub(crate) fn edeadlk() -> Error {
    Error::from_errno(-(bindings::EDEADLK as i32))
}

/// `EUSERS`: a task outside the thread group uses the address space.
pub(crate) fn eusers() -> Error {
    Error::from_errno(-(bindings::EUSERS as i32))
}

/// Refuses what a rendezvous on `group` (using `mm`) could not complete.
pub(crate) fn check_parkable(group: &TaskRef, mm: &MmRef) -> Result {
    if group.mm_has_foreign_user(mm) {
        return Err(eusers());
    }
    let threads = group.threads(MAX_THREADS)?;
    if threads.iter().any(|t| t.is_held()) {
        return Err(edeadlk());
    }
    Ok(())
}

/// Parks every thread of the group of `group` (running `pre` in the first
/// one to arrive).
///
/// Errors: `EBUSY` (a thread did not arrive in time), `EINTR` (the caller
/// was interrupted, or a parked thread was killed), `EDEADLK` (a thread is
/// stopped, traced or frozen), `EUSERS` (a task outside the group uses
/// `mm`), `EAGAIN` (new threads kept appearing), `ESRCH` (the process is
/// gone), `ENOMEM`.
pub(crate) fn gather<D: Duty>(group: &TaskRef, mm: &MmRef, pre: Option<D>) -> Result<Gathered<D>> {
    let rendezvous = Arc::pin_init(
        pin_init!(Rendezvous {
            state <- new_mutex!(State {
                arrived: 0,
                released: false,
                failed: false,
                killed: false,
                points: KVec::new(),
                pre_duty: pre,
                pre_result: None,
                duty_done: None,
                collected: false,
                runner_is_caller: false,
            }),
            changed <- new_condvar!(),
            release <- Opaque::ffi_init(|slot| {
                // SAFETY: `slot` is the completion's pinned place inside the
                // `Arc`; `init_completion` initializes it there.
                unsafe { bindings::adapt_completion_init(slot) }
            }),
        }),
        GFP_KERNEL,
    )?;
    let mut gathered = Gathered {
        rendezvous,
        started: Ktime::ktime_get(),
        threads: 0,
        points: KVec::new(),
        pre_result: None,
    };
    let wants_duty = gathered.rendezvous.state.lock().pre_duty.is_some();
    if group.mm_has_foreign_user(mm) {
        return Err(eusers());
    }
    // Threads queued so far, by identity (the references keep each task,
    // and so its address, from being reused while we compare).
    let mut queued: KVec<TaskRef> = KVec::new();
    let mut queued_count = 0usize;

    // The caller may be a thread of the target itself (a process injecting
    // into itself). It is inside this ioctl, so it runs no user code until
    // the rendezvous is over: it is not queued, it is already in the
    // target's context for the duty, and its user IP is its syscall's.
    // SAFETY: Compares the current task's group with a counted task's.
    let caller_inside = unsafe { bindings::adapt_current_in_group_of(group.as_ptr()) };
    if caller_inside {
        let me = TaskRef::current();
        let (mut user_ip, mut restart_ip) = (0u64, 0u64);
        // SAFETY: Reads the current task into locals.
        unsafe { bindings::adapt_current_user_ips(&mut user_ip, &mut restart_ip) };
        queued.push(me, GFP_KERNEL)?;
        let mut state = gathered.rendezvous.state.lock();
        state.points.push(
            ThreadPoint {
                user_ip,
                restart_ip,
                exiting: false,
            },
            GFP_KERNEL,
        )?;
        if let Some(mut duty) = state.pre_duty.take() {
            drop(state);
            let result = duty.run();
            state = gathered.rendezvous.state.lock();
            if let Ok(value) = result {
                state.duty_done = Some((duty, value));
                state.runner_is_caller = true;
            }
            state.pre_result = Some(result);
        }
    }
    let self_points = usize::from(caller_inside);

    let mut quiet = false;
    for _ in 0..MAX_ROUNDS {
        let threads = group.threads(MAX_THREADS)?;
        let mut fresh: KVec<TaskRef> = KVec::new();
        for thread in threads {
            if queued.iter().any(|q| q.as_ptr() == thread.as_ptr()) {
                continue;
            }
            if thread.is_held() {
                return Err(edeadlk());
            }
            fresh.push(thread, GFP_KERNEL)?;
        }
        if fresh.is_empty() {
            quiet = true;
            break;
        }
        // Room for a point of every thread queued so far and of these, so
        // that arrivals never allocate.
        {
            let mut state = gathered.rendezvous.state.lock();
            let want = self_points + queued_count + fresh.len();
            let more = want.saturating_sub(state.points.len());
            state.points.reserve(more, GFP_KERNEL)?;
        }
        queued.reserve(fresh.len(), GFP_KERNEL)?;
        for thread in fresh {
            if queue(&thread, &gathered.rendezvous)? {
                queued_count += 1;
            }
            queued.push(thread, GFP_KERNEL)?;
        }
        // A thread that runs the pre duty counts as arrived only once the
        // duty is done.
        wait_for_arrivals(&gathered.rendezvous, &queued, queued_count)?;
    }
    if !quiet {
        return Err(EAGAIN);
    }
    if queued_count == 0 && !caller_inside {
        return Err(ESRCH);
    }

    let mut state = gathered.rendezvous.state.lock();
    if state.failed {
        return Err(ENOMEM);
    }
    if state.killed {
        return Err(EINTR);
    }
    gathered.pre_result = state.pre_result.take();
    // Exiting threads never take the pre duty; if only those arrived, the
    // duty was not run.
    if wants_duty && gathered.pre_result.is_none() {
        return Err(ESRCH);
    }
    gathered.threads = (state.arrived + self_points) as u32;
    core::mem::swap(&mut gathered.points, &mut state.points);
    drop(state);
    // With every thread of the group parked, no new sharer can appear from
    // inside it; one created just before would be seen here.
    if group.mm_has_foreign_user(mm) {
        return Err(eusers());
    }
    // From here the caller owns what the pre duty made.
    gathered.rendezvous.state.lock().collected = true;
    Ok(gathered)
}

/// Waits until `count` threads arrived. A thread that is stopped, traced
/// or frozen meanwhile fails the wait with `EDEADLK` at once rather than at
/// the timeout.
fn wait_for_arrivals<D: Duty>(rendezvous: &Rendezvous<D>, queued: &[TaskRef], count: usize) -> Result {
    let deadline = Ktime::ktime_get().to_ms() + ARRIVAL_TIMEOUT_MS;
    let mut state = rendezvous.state.lock();
    while state.arrived < count {
        if state.killed {
            return Err(EINTR);
        }
        let left = deadline - Ktime::ktime_get().to_ms();
        if left <= 0 {
            return Err(EBUSY);
        }
        let slice = (left as u32).min(ARRIVAL_SLICE_MS);
        match rendezvous
            .changed
            .wait_interruptible_timeout(&mut state, msecs_to_jiffies(slice))
        {
            CondVarTimeoutResult::Signal { .. } => return Err(EINTR),
            CondVarTimeoutResult::Woken { .. } => {}
            CondVarTimeoutResult::Timeout => {
                if state.arrived < count && queued.iter().any(|t| t.is_held()) {
                    return Err(edeadlk());
                }
            }
        }
    }
    Ok(())
}

impl<D: Duty> Gathered<D> {
    /// Nanoseconds since the first thread was asked to stop.
    pub(crate) fn held_ns(&self) -> u64 {
        let ns = Ktime::ktime_get().to_ns() - self.started.to_ns();
        u64::try_from(ns).unwrap_or(0)
    }

    /// Whether a parked thread was killed (it left the park; the process is
    /// dying). Checked again just before bytes change.
    pub(crate) fn killed(&self) -> bool {
        self.rendezvous.state.lock().killed
    }

    /// Lets every thread go. Returns the time the threads were held.
    pub(crate) fn release(self) -> u64 {
        let held = self.held_ns();
        drop(self);
        held
    }
}

impl<D: Duty> Drop for Gathered<D> {
    fn drop(&mut self) {
        self.rendezvous.open();
        let mut state = self.rendezvous.state.lock();
        if state.runner_is_caller && !state.collected {
            // The caller ran the pre duty in its own (the target's) context
            // and gave up: undo it here.
            if let Some((mut duty, value)) = state.duty_done.take() {
                drop(state);
                duty.abandon(value);
            }
        }
    }
}
