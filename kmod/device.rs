// SPDX-License-Identifier: GPL-2.0

//! `/dev/adapt`: who may open it, and the state behind it.

use crate::injector::Injector;
use crate::ioctl;
use crate::library::Library;
use crate::miscdev::MiscDevice;
use crate::profiler::Profiler;
use crate::{bindings, task};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{prelude::*, sync::Arc};

/// State shared by every open file of `/dev/adapt`.
#[pin_data]
pub(crate) struct Shared {
    /// `ADAPT_CAP_*` bits probed at load.
    pub(crate) capabilities: u64,
    #[pin]
    pub(crate) profiler: Profiler,
    #[pin]
    pub(crate) library: Library,
    #[pin]
    pub(crate) injector: Injector,
    next_client: AtomicU64,
}

impl Shared {
    pub(crate) fn new(capabilities: u64, policy: KBox<crate::injector::Policy>) -> impl PinInit<Self> {
        pin_init!(Self {
            capabilities,
            profiler <- Profiler::new(),
            library <- Library::new(),
            injector <- Injector::new(policy),
            next_client: AtomicU64::new(1),
        })
    }
}

/// One open file of `/dev/adapt`. What it started (profiling sessions)
/// ends when it is closed.
pub(crate) struct Client {
    pub(crate) id: u64,
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.profiler.stop_owned_by(self.id);
    }
}

/// The driver behind `/dev/adapt`.
pub(crate) struct AdaptDevice;

impl MiscDevice for AdaptDevice {
    type RegistrationData = SharedHandle;
    type Ptr = KBox<Client>;

    fn open(data: &SharedHandle) -> Result<KBox<Client>> {
        // The node is 0600, but a process in another user namespace can be
        // uid 0 there without any power here: require the real capability.
        if !task::capable(bindings::CAP_SYS_ADMIN) {
            return Err(EPERM);
        }
        let shared = data.0.clone();
        let id = shared.next_client.fetch_add(1, Ordering::Relaxed);
        Ok(KBox::new(Client { id, shared }, GFP_KERNEL)?)
    }

    fn ioctl(client: &Client, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(client, cmd, arg)
    }
}

/// The registration's reference to [`Shared`].
pub(crate) struct SharedHandle(Arc<Shared>);

impl SharedHandle {
    /// The shared state (for the module's own teardown).
    pub(crate) fn shared(&self) -> &Shared {
        &self.0
    }

    pub(crate) fn new(capabilities: u64) -> Result<Self> {
        let policy = KBox::new(crate::injector::default_policy(), GFP_KERNEL)?;
        Ok(Self(Arc::pin_init(Shared::new(capabilities, policy), GFP_KERNEL)?))
    }
}
