// SPDX-License-Identifier: GPL-2.0

//! Misc devices (`struct miscdevice` with its `struct file_operations`).
//!
//! Shaped like the upstream `kernel::miscdevice` of later kernels, so that a
//! port to 6.13+ is a matter of deleting this file: a driver implements
//! [`MiscDevice`]; [`MiscDeviceRegistration`] registers it and deregisters it
//! when dropped. The `extern "C"` callbacks below only convert between raw
//! pointers and those safe types.

use crate::bindings;
use core::{ffi::c_void, marker::PhantomData, ptr};
use kernel::{
    error::{to_result, Error, Result},
    ffi::{c_int, c_long, c_uint, c_ulong},
    init::PinInit,
    str::CStr,
    types::{ForeignOwnable, Opaque},
    ThisModule,
};

/// What a misc device is registered as.
pub(crate) struct MiscDeviceOptions {
    /// Name of the device; the node is `/dev/<name>`.
    pub(crate) name: &'static CStr,
    /// Permissions of the device node (e.g. `0o600`).
    pub(crate) mode: u16,
}

/// A driver behind a misc device.
pub(crate) trait MiscDevice: Sized {
    /// State shared by every open file, owned by the registration.
    type RegistrationData: Send + Sync;

    /// State of one open file, owned by the file from `open` to `release`.
    type Ptr: ForeignOwnable + Send + Sync;

    /// Called when the device node is opened.
    fn open(data: &Self::RegistrationData) -> Result<Self::Ptr>;

    /// Called when the last reference to an open file goes away.
    fn release(device: Self::Ptr) {
        drop(device);
    }

    /// Handles `ioctl(2)`: `cmd` is the ioctl number, `arg` the untrusted
    /// argument (usually a user pointer).
    fn ioctl(
        device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        cmd: u32,
        arg: usize,
    ) -> Result<isize>;
}

/// A registered misc device.
///
/// # Invariants
///
/// - `inner` is registered with `misc_register` for as long as this value
///   exists, and its `fops` points at `fops`.
/// - `inner` is the first field of a `#[repr(C)]` struct, so a pointer to it
///   is a pointer to the registration.
#[repr(C)]
pub(crate) struct MiscDeviceRegistration<T: MiscDevice> {
    inner: Opaque<bindings::miscdevice>,
    fops: Opaque<bindings::file_operations>,
    data: T::RegistrationData,
    _t: PhantomData<T>,
}

// SAFETY: The registration is only touched by `misc_register`/`misc_deregister`
// (which serialize on the misc core's own mutex) and by the file callbacks,
// which only read `data`; `data` itself is `Send + Sync`.
unsafe impl<T: MiscDevice> Send for MiscDeviceRegistration<T> {}
// SAFETY: See `Send`: shared access is limited to `&data`, which is `Sync`.
unsafe impl<T: MiscDevice> Sync for MiscDeviceRegistration<T> {}

impl<T: MiscDevice> MiscDeviceRegistration<T> {
    /// Registers a misc device whose files are handled by `T`, with `data`
    /// shared by every open file. Files opened on the device hold a reference
    /// on `owner`, so the module cannot go away while one is open.
    pub(crate) fn register(
        options: MiscDeviceOptions,
        owner: &'static ThisModule,
        data: T::RegistrationData,
    ) -> impl PinInit<Self, Error> {
        let init = move |slot: *mut Self| -> Result {
            // SAFETY: `slot` is valid for writes of a `Self` and pinned
            // (guaranteed by `pin_init_from_closure`'s caller). Fields are
            // written before `misc_register` publishes the device, because an
            // `open` can arrive as soon as it returns.
            unsafe {
                ptr::addr_of_mut!((*slot).data).write(data);
                ptr::addr_of_mut!((*slot)._t).write(PhantomData);
                let fops = Opaque::raw_get(ptr::addr_of!((*slot).fops));
                fops.write(Self::file_operations(owner));
                let misc = Opaque::raw_get(ptr::addr_of!((*slot).inner));
                misc.write(bindings::miscdevice {
                    minor: bindings::MISC_DYNAMIC_MINOR as c_int,
                    name: options.name.as_char_ptr(),
                    fops,
                    mode: options.mode,
                    ..Default::default()
                });
                if let Err(err) = to_result(bindings::misc_register(misc)) {
                    // Not registered: nothing refers to `data` any more, and
                    // the caller will not drop a half-initialized `Self`.
                    ptr::drop_in_place(ptr::addr_of_mut!((*slot).data));
                    return Err(err);
                }
            }
            Ok(())
        };
        // SAFETY: On `Ok` the closure has initialized every field and
        // registered `inner` (the type invariant); on `Err` it has dropped
        // what it wrote and registered nothing.
        unsafe { kernel::init::pin_init_from_closure(init) }
    }

    /// The data shared by every open file.
    pub(crate) fn data(&self) -> &T::RegistrationData {
        &self.data
    }

    fn file_operations(owner: &'static ThisModule) -> bindings::file_operations {
        bindings::file_operations {
            owner: owner.as_ptr().cast(),
            open: Some(open_callback::<T>),
            release: Some(release_callback::<T>),
            unlocked_ioctl: Some(ioctl_callback::<T>),
            ..Default::default()
        }
    }
}

impl<T: MiscDevice> Drop for MiscDeviceRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `inner` is registered; this is the
        // only place it is deregistered. No file can be open here: open files
        // hold a reference on the owning module, which is being unloaded.
        unsafe { bindings::misc_deregister(self.inner.get()) };
    }
}

/// # Safety
///
/// Called by the VFS through `misc_open` with a valid `file` whose
/// `private_data` is the `struct miscdevice` that was opened.
unsafe extern "C" fn open_callback<T: MiscDevice>(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `file` is valid for this call (function safety requirement).
    let misc = unsafe { (*file).private_data }.cast::<bindings::miscdevice>();
    // SAFETY: These callbacks are only installed by `register`, whose
    // `miscdevice` is the first field of a `#[repr(C)]`
    // `MiscDeviceRegistration<T>`. The registration outlives the open: the
    // file holds a reference on the owning module.
    let registration = unsafe { &*misc.cast::<MiscDeviceRegistration<T>>() };
    match T::open(&registration.data) {
        Ok(device) => {
            // SAFETY: `file` is valid; `private_data` belongs to the driver
            // once `open` runs. It is reclaimed in `release_callback`.
            unsafe { (*file).private_data = device.into_foreign().cast_mut() };
            0
        }
        Err(err) => err.to_errno(),
    }
}

/// # Safety
///
/// Called once per file by the VFS, after every other file operation, on a
/// file that `open_callback` opened successfully.
unsafe extern "C" fn release_callback<T: MiscDevice>(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `file` is valid for this call.
    let private: *const c_void = unsafe { (*file).private_data };
    // SAFETY: `private` came from `into_foreign` in `open_callback` and is
    // reclaimed exactly once, here.
    let device = unsafe { <T::Ptr as ForeignOwnable>::from_foreign(private) };
    T::release(device);
    0
}

/// # Safety
///
/// Called by the VFS on a file that `open_callback` opened successfully and
/// that is not yet released.
unsafe extern "C" fn ioctl_callback<T: MiscDevice>(
    file: *mut bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: `file` is valid for this call.
    let private: *const c_void = unsafe { (*file).private_data };
    // SAFETY: `private` came from `into_foreign` in `open_callback`;
    // `release_callback` cannot run while this call holds the file.
    let device = unsafe { <T::Ptr as ForeignOwnable>::borrow(private) };
    match T::ioctl(device, cmd, arg) {
        Ok(ret) => ret as c_long,
        Err(err) => err.to_errno() as c_long,
    }
}
