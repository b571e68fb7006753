// SPDX-License-Identifier: GPL-2.0

//! adapt: live specialization of running programs.
//!
//! The module holds the mechanism (sampling, mapping, patching); every
//! decision is made in userspace by `adaptctl`, which talks to `/dev/adapt`.
//! This file is the crate root: the module declaration and the list of
//! modules.

use kernel::prelude::*;

// The ioctl ABI, shared with userspace and defined only there. The module
// uses a subset of it.
#[allow(dead_code, unreachable_pub)]
#[path = "../userspace/abi/src/abi.rs"]
mod abi;
mod bindings;
mod caps;
mod cpus;
mod device;
mod errno;
mod fault_watch;
mod injector;
mod ioctl;
mod kvec_ext;
mod library;
mod miscdev;
mod perf;
mod profiler;
mod rendezvous;
mod sample_ring;
mod segment_map;
mod task;
mod text_patch;

/// Version of this module, reported by `ADAPT_IOC_VERSION`. Kept equal to the
/// workspace version (a host test checks it).
const MODULE_VERSION: &str = "0.1.0";

module! {
    type: AdaptModule,
    name: "adapt",
    author: "The adapt developers",
    description: "adapt: live specialization of running programs",
    license: "GPL",
}

/// Owns every registration of the module; dropping it (at `rmmod`) undoes
/// them in reverse order.
struct AdaptModule {
    device: Pin<KBox<miscdev::MiscDeviceRegistration<device::AdaptDevice>>>,
}

impl kernel::Module for AdaptModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let capabilities = caps::probe();
        pr_info!(
            "adapt {} (ABI {}): sampling with {}\n",
            MODULE_VERSION,
            abi::ADAPT_ABI_VERSION,
            caps::describe(capabilities)
        );

        let options = miscdev::MiscDeviceOptions {
            name: kernel::c_str!("adapt"),
            mode: 0o600,
        };
        segment_map::init()?;
        fault_watch::start();
        let shared = match device::SharedHandle::new(capabilities) {
            Ok(shared) => shared,
            Err(err) => {
                fault_watch::stop();
                segment_map::exit();
                return Err(err);
            }
        };
        match KBox::pin_init(
            miscdev::MiscDeviceRegistration::register(options, module, shared),
            GFP_KERNEL,
        ) {
            Ok(device) => Ok(Self { device }),
            Err(err) => {
                fault_watch::stop();
                segment_map::exit();
                Err(err)
            }
        }
    }
}

impl Drop for AdaptModule {
    fn drop(&mut self) {
        // No file of /dev/adapt is open (they pin the module), so nothing
        // else touches the injector now. Put every target back first.
        self.device.data().shared().injector.revert_all();
        fault_watch::stop();
        // Works the unload's own reverts queued (each holds a module
        // reference) must have run: their code is in the module. Works of
        // earlier requests cannot be pending: they held references, and
        // `rmmod` would have failed with EBUSY.
        while rendezvous::works_pending_at_exit() {
            // SAFETY: Sleeping is allowed here (module exit, process context).
            unsafe { bindings::msleep(1) };
        }
        segment_map::exit();
    }
}
