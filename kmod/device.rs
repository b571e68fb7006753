// SPDX-License-Identifier: GPL-2.0

//! `/dev/adapt`: who may open it, and the state behind it.

use crate::bindings;
use crate::ioctl;
use crate::miscdev::MiscDevice;
use kernel::{prelude::*, sync::Arc};

/// State shared by every open file of `/dev/adapt`.
pub(crate) struct Shared {
    /// `ADAPT_CAP_*` bits probed at load.
    pub(crate) capabilities: u64,
}

impl Shared {
    pub(crate) fn new(capabilities: u64) -> Self {
        Self { capabilities }
    }
}

/// One open file of `/dev/adapt`.
pub(crate) struct Client {
    pub(crate) shared: Arc<Shared>,
}

/// The driver behind `/dev/adapt`.
pub(crate) struct AdaptDevice;

impl MiscDevice for AdaptDevice {
    type RegistrationData = SharedHandle;
    type Ptr = KBox<Client>;

    fn open(data: &SharedHandle) -> Result<KBox<Client>> {
        // The node is 0600, but a process in another user namespace can be
        // uid 0 there without any power here: require the real capability.
        // SAFETY: `capable` only reads the current task's credentials.
        if !unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) } {
            return Err(EPERM);
        }
        Ok(KBox::new(
            Client {
                shared: data.0.clone(),
            },
            GFP_KERNEL,
        )?)
    }

    fn ioctl(client: &Client, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(client, cmd, arg)
    }
}

/// The registration's reference to [`Shared`].
pub(crate) struct SharedHandle(Arc<Shared>);

impl SharedHandle {
    pub(crate) fn new(shared: Shared) -> Result<Self> {
        Ok(Self(Arc::new(shared, GFP_KERNEL)?))
    }
}
