//! The library behind `adaptctl`: opening `/dev/adapt`, issuing its ioctls,
//! turning a verified segment's variant into an upload (`upload`), and
//! turning every way that can fail into an error that names the cause and
//! the fix.

pub mod device;
pub mod error;
pub mod inject;
pub mod library;
pub mod policy;
pub mod profile;
pub mod status;
pub mod upload;

pub use device::{Device, DEFAULT_DEVICE_PATH};
pub use error::{DeviceError, ErrorKind};
pub use inject::{InjectError, InjectRequest, Injected, Injection, Reverted};
pub use library::{LibraryError, LoadOutcome, LoadedVariant, VariantUpload};
pub use policy::Policy;
pub use profile::{ProfileError, ProfileSession, ReadBatch, SamplingEvent};
pub use status::{Sampling, Status};
pub use upload::UploadError;
