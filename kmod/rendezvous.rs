// SPDX-License-Identifier: GPL-2.0

//! Bringing every thread of a process to a known point.
//!
//! Each thread gets a task work queued with `TWA_SIGNAL`: a thread running
//! user code is interrupted, a thread sleeping interruptibly is woken, and
//! every thread runs the work on its next return to user mode, before it can
//! execute another user instruction. The work records the thread's user
//! instruction pointer and parks the thread until [`Gathered::release`].
//! Threads created meanwhile are found by enumerating again once the known
//! ones are parked (a parked thread cannot create more).
//!
//! Work that needs the target's own context (mapping or unmapping segment
//! memory, which acts on `current->mm`) is handed to the first thread that
//! arrives ([`PreDuty`]), or to that same thread after release
//! ([`PostDuty`]).
//!
//! Lock order: `Rendezvous::state` is a leaf lock. Works still queued when the
//! injector gives up find the rendezvous released and return at once; the
//! module waits for [`pending_works`] to reach zero before it goes away.

use crate::bindings;
use crate::task::TaskRef;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
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
const ARRIVAL_TIMEOUT_MS: u32 = 5000;
/// How long a post-release duty may take.
const POST_DUTY_TIMEOUT_MS: u32 = 5000;
/// Enumeration rounds before giving up on a process that keeps creating
/// threads faster than they can be parked.
const MAX_ROUNDS: usize = 8;

/// Task works queued and not yet finished, across all rendezvous.
static PENDING_WORKS: AtomicUsize = AtomicUsize::new(0);

/// Task works that have not finished running; the module must not go away
/// before this is zero (their code is in the module).
pub(crate) fn pending_works() -> usize {
    PENDING_WORKS.load(Ordering::Acquire)
}

/// Something to do in the target's context: before the rendezvous completes
/// (the pre duty, run by the first thread to arrive) or after release (the
/// post duty, run by that same thread).
pub(crate) trait Duty: Send + 'static {
    /// Runs in a target thread; returns a value for the injector.
    fn run(&mut self) -> Result<u64>;
}

/// Where one thread was when it arrived.
#[derive(Clone, Copy)]
pub(crate) struct ThreadPoint {
    pub(crate) user_ip: u64,
    /// The thread is exiting: it will not run user code again.
    pub(crate) exiting: bool,
}

struct State<D> {
    arrived: usize,
    released: bool,
    points: KVec<ThreadPoint>,
    pre_duty: Option<D>,
    pre_result: Option<Result<u64>>,
    /// The thread that ran the pre duty; it also runs the post duty.
    designated: Option<u32>,
    post_duty: Option<D>,
    post_result: Option<Result<u64>>,
}

#[pin_data]
struct Rendezvous<D> {
    #[pin]
    state: Mutex<State<D>>,
    #[pin]
    changed: CondVar,
}

impl<D: Duty> Rendezvous<D> {
    /// Runs in a target thread, from its task work.
    fn arrive(&self) {
        // SAFETY: These read the current task, which is a user thread
        // returning to user mode (or exiting).
        let (exiting, user_ip, tid) = unsafe {
            (
                bindings::adapt_current_exiting(),
                bindings::adapt_current_user_ip(),
                bindings::adapt_current_tid(),
            )
        };
        // `tid` designates the duty thread; the points only need the IP.
        let mut state = self.state.lock();
        if state.released {
            return;
        }
        if !exiting {
            if let Some(mut duty) = state.pre_duty.take() {
                drop(state);
                let result = duty.run();
                state = self.state.lock();
                state.pre_result = Some(result);
                state.designated = Some(tid);
            }
        }
        // Capacity for every queued thread was reserved up front.
        let _ = state.points.push(ThreadPoint { user_ip, exiting }, GFP_NOWAIT);
        state.arrived += 1;
        self.changed.notify_all();
        while !state.released {
            self.changed.wait(&mut state);
        }
        if state.designated == Some(tid) {
            if let Some(mut duty) = state.post_duty.take() {
                drop(state);
                let result = duty.run();
                state = self.state.lock();
                state.post_result = Some(result);
                self.changed.notify_all();
            }
        }
    }
}

/// The task work of one thread. `head` must stay the first field: the
/// callback gets a pointer to it.
#[repr(C)]
struct ThreadWork<D> {
    head: Opaque<bindings::callback_head>,
    rendezvous: Arc<Rendezvous<D>>,
}

/// # Safety
///
/// Called once by `task_work_run` with the `callback_head` of a
/// `ThreadWork` leaked by [`queue`].
unsafe extern "C" fn thread_work_callback<D: Duty>(head: *mut bindings::callback_head) {
    // SAFETY: `head` is the first field of a `#[repr(C)]` `ThreadWork<D>`
    // allocated by `KBox` and leaked in `queue`; this is its only reclaim.
    let work = unsafe { KBox::from_raw(head.cast::<ThreadWork<D>>()) };
    work.rendezvous.arrive();
    drop(work);
    PENDING_WORKS.fetch_sub(1, Ordering::Release);
}

/// Queues the rendezvous work on `task`. `Ok(false)` when the task is
/// exiting and will not return to user mode.
fn queue<D: Duty>(task: &TaskRef, rendezvous: &Arc<Rendezvous<D>>) -> Result<bool> {
    let work = KBox::new(
        ThreadWork {
            head: Opaque::uninit(),
            rendezvous: rendezvous.clone(),
        },
        GFP_KERNEL,
    )?;
    let raw = KBox::into_raw(work);
    PENDING_WORKS.fetch_add(1, Ordering::AcqRel);
    // SAFETY: `raw` is a valid, leaked `ThreadWork`; its `head` is
    // initialized by `init_task_work` inside the shim. On success the task
    // owns it until the callback reclaims it.
    let ret = unsafe {
        bindings::adapt_task_work_queue(
            task.as_ptr(),
            Opaque::raw_get(ptr::addr_of!((*raw).head)),
            Some(thread_work_callback::<D>),
        )
    };
    if ret == 0 {
        return Ok(true);
    }
    PENDING_WORKS.fetch_sub(1, Ordering::Release);
    // SAFETY: The work was not queued, so we still own it.
    drop(unsafe { KBox::from_raw(raw) });
    Ok(false)
}

/// Every thread of a process, parked.
pub(crate) struct Gathered<D: Duty> {
    rendezvous: Arc<Rendezvous<D>>,
    started: Ktime,
    released: bool,
    /// The caller is a thread of the target and ran the pre duty: it runs
    /// the post duty too.
    caller_designated: bool,
    /// Threads that arrived or were found exiting.
    pub(crate) threads: u32,
    /// Where they were.
    pub(crate) points: KVec<ThreadPoint>,
    /// Result of the pre duty, if one was given.
    pub(crate) pre_result: Option<Result<u64>>,
}

/// Parks every thread of `process` (running `pre` in the first one to
/// arrive). `EBUSY` if some thread does not arrive in time, `EINTR` if the
/// caller is interrupted, `ESRCH` if the process is gone.
pub(crate) fn gather<D: Duty>(process: &TaskRef, pre: Option<D>) -> Result<Gathered<D>> {
    let rendezvous = Arc::pin_init(
        pin_init!(Rendezvous {
            state <- new_mutex!(State {
                arrived: 0,
                released: false,
                points: KVec::new(),
                pre_duty: pre,
                pre_result: None,
                designated: None,
                post_duty: None,
                post_result: None,
            }),
            changed <- new_condvar!(),
        }),
        GFP_KERNEL,
    )?;
    let mut gathered = Gathered {
        rendezvous,
        started: Ktime::ktime_get(),
        released: false,
        caller_designated: false,
        threads: 0,
        points: KVec::new(),
        pre_result: None,
    };
    let wants_duty = gathered.rendezvous.state.lock().pre_duty.is_some();
    let mut queued_tids: KVec<u32> = KVec::new();
    let mut queued = 0usize;

    // The caller may be a thread of the target itself (a process injecting
    // into itself). It is inside this ioctl, so it runs no user code until
    // the rendezvous is over: it is not queued, it is already in the
    // target's context for the duties, and its user IP is its syscall's.
    // SAFETY: Compares the current task's group with a counted task's.
    let caller_inside = unsafe { bindings::adapt_current_in_group_of(process.as_ptr()) };
    if caller_inside {
        // SAFETY: Reads the current task.
        let (me, user_ip) = unsafe { (bindings::adapt_current_tid(), bindings::adapt_current_user_ip()) };
        queued_tids.push(me, GFP_KERNEL)?;
        let mut state = gathered.rendezvous.state.lock();
        state.points.push(ThreadPoint { user_ip, exiting: false }, GFP_KERNEL)?;
        if let Some(mut duty) = state.pre_duty.take() {
            drop(state);
            let result = duty.run();
            state = gathered.rendezvous.state.lock();
            state.pre_result = Some(result);
            state.designated = Some(me);
        }
        gathered.caller_designated = state.designated == Some(me);
    }
    let self_points = usize::from(caller_inside);

    for _ in 0..MAX_ROUNDS {
        let threads = process.threads(MAX_THREADS)?;
        let mut added = 0;
        for thread in threads.iter() {
            let tid = thread.tid();
            if queued_tids.contains(&tid) {
                continue;
            }
            queued_tids.push(tid, GFP_KERNEL)?;
            gathered
                .rendezvous
                .state
                .lock()
                .points
                .reserve(1, GFP_KERNEL)?;
            if queue(thread, &gathered.rendezvous)? {
                queued += 1;
                added += 1;
            }
        }
        if added == 0 && (queued > 0 || caller_inside) {
            break;
        }
        if queued == 0 && !caller_inside {
            return Err(ESRCH);
        }
        // A thread that runs the pre duty counts as arrived only once the
        // duty is done.
        wait_for(&gathered.rendezvous, |s| s.arrived >= queued)?;
    }

    let mut state = gathered.rendezvous.state.lock();
    if state.arrived < queued {
        return Err(EBUSY);
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
    Ok(gathered)
}

fn wait_for<D: Duty>(rendezvous: &Rendezvous<D>, done: impl Fn(&State<D>) -> bool) -> Result {
    let deadline = Ktime::ktime_get().to_ms() + i64::from(ARRIVAL_TIMEOUT_MS);
    let mut state = rendezvous.state.lock();
    while !done(&state) {
        let left = deadline - Ktime::ktime_get().to_ms();
        if left <= 0 {
            return Err(EBUSY);
        }
        // `left` is at most ARRIVAL_TIMEOUT_MS.
        match rendezvous
            .changed
            .wait_interruptible_timeout(&mut state, msecs_to_jiffies(left as u32))
        {
            CondVarTimeoutResult::Signal { .. } => return Err(EINTR),
            CondVarTimeoutResult::Timeout | CondVarTimeoutResult::Woken { .. } => {}
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

    /// Lets every thread go; `post` runs afterwards in the thread that ran
    /// the pre duty, and its result is returned. Returns the time the
    /// threads were held.
    pub(crate) fn release(mut self, post: Option<D>) -> (u64, Result<u64>) {
        let held = self.held_ns();
        if self.caller_designated {
            // The caller is the target thread that does the duties; release
            // the others, then run it here, in the target's context.
            {
                let mut state = self.rendezvous.state.lock();
                state.released = true;
                self.released = true;
                self.rendezvous.changed.notify_all();
            }
            return match post {
                Some(mut duty) => (held, duty.run()),
                None => (held, Ok(0)),
            };
        }
        let has_post = post.is_some();
        {
            let mut state = self.rendezvous.state.lock();
            state.post_duty = post;
            state.released = true;
            self.released = true;
            self.rendezvous.changed.notify_all();
        }
        if !has_post {
            return (held, Ok(0));
        }
        let deadline = Ktime::ktime_get().to_ms() + i64::from(POST_DUTY_TIMEOUT_MS);
        let mut state = self.rendezvous.state.lock();
        loop {
            if let Some(result) = state.post_result.take() {
                return (held, result);
            }
            let left = deadline - Ktime::ktime_get().to_ms();
            if left <= 0 {
                return (held, Err(crate::errno::etimedout()));
            }
            // Uninterruptible in effect: the duty is already handed over.
            let _ = self
                .rendezvous
                .changed
                .wait_interruptible_timeout(&mut state, msecs_to_jiffies(left as u32));
        }
    }
}

impl<D: Duty> Drop for Gathered<D> {
    fn drop(&mut self) {
        if !self.released {
            let mut state = self.rendezvous.state.lock();
            state.released = true;
            self.rendezvous.changed.notify_all();
        }
    }
}
