//! Profiling sessions through `/dev/adapt`.

use crate::device::Device;
use adapt_abi as abi;
use serde::Serialize;
use std::io;

/// The event a session samples with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplingEvent {
    /// Hardware CPU cycles (a sampling PMU).
    Cycles,
    /// The software `cpu-clock` event.
    CpuClock,
}

impl SamplingEvent {
    fn from_code(code: u32) -> Option<Self> {
        match code {
            abi::ADAPT_EVENT_HW_CYCLES => Some(Self::Cycles),
            abi::ADAPT_EVENT_SW_CPU_CLOCK => Some(Self::CpuClock),
            _ => None,
        }
    }

    /// The name perf would use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cycles => "cycles",
            Self::CpuClock => "cpu-clock",
        }
    }
}

/// Why a profiling request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("no process with pid {pid} (pass a process id, not a thread id)")]
    NoSuchProcess { pid: u32 },
    #[error("pid {pid} is a kernel thread: only user processes can be profiled")]
    KernelThread { pid: u32 },
    #[error(
        "not allowed to profile pid {pid}: the caller needs CAP_SYS_PTRACE and the target must be \
         dumpable (setuid programs and processes that called prctl(PR_SET_DUMPABLE, 0) are refused)"
    )]
    NotPermitted { pid: u32 },
    #[error(
        "sampling frequency {freq} Hz is out of bounds: use {}..={} Hz",
        abi::ADAPT_PROFILE_FREQ_MIN,
        abi::ADAPT_PROFILE_FREQ_MAX
    )]
    FrequencyOutOfRange { freq: u32 },
    #[error(
        "too many profiling sessions are running (at most {}): stop one and retry",
        abi::ADAPT_PROFILE_MAX_SESSIONS
    )]
    TooManySessions,
    #[error("the profiling session {session} no longer exists")]
    SessionGone { session: u64 },
    #[error("the module answered with an unknown sampling event code {0}")]
    UnknownEvent(u32),
    #[error("{what} failed: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A running session. Stopped when dropped (and by the module when the
/// device file is closed).
pub struct ProfileSession<'d> {
    device: &'d Device,
    id: u64,
    pid: u32,
    event: SamplingEvent,
    freq_hz: u32,
    stopped: bool,
}

/// What one read returned.
#[derive(Clone, Debug, Default)]
pub struct ReadBatch {
    pub samples: Vec<abi::AdaptSample>,
    /// Samples recorded since the start.
    pub recorded: u64,
    /// Samples dropped since the start (buffers full).
    pub dropped: u64,
    /// The target exited and every sample has been read.
    pub target_exited: bool,
}

impl<'d> ProfileSession<'d> {
    /// Starts sampling process `pid` at `freq_hz` (0 = the module's default).
    pub fn start(
        device: &'d Device,
        pid: u32,
        freq_hz: u32,
        software_only: bool,
    ) -> Result<Self, ProfileError> {
        let mut request = abi::AdaptProfileStart {
            pid,
            freq_hz,
            flags: if software_only {
                abi::ADAPT_PROFILE_F_SOFTWARE
            } else {
                0
            },
            ..Default::default()
        };
        device
            .ioctl(abi::ADAPT_IOC_PROFILE_START, &mut request)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ESRCH) => ProfileError::NoSuchProcess { pid },
                Some(libc::EOPNOTSUPP) => ProfileError::KernelThread { pid },
                Some(libc::EPERM) => ProfileError::NotPermitted { pid },
                Some(libc::ERANGE) => ProfileError::FrequencyOutOfRange { freq: freq_hz },
                Some(libc::EBUSY) => ProfileError::TooManySessions,
                _ => ProfileError::Io {
                    what: "ADAPT_IOC_PROFILE_START",
                    source,
                },
            })?;
        let event = SamplingEvent::from_code(request.event)
            .ok_or(ProfileError::UnknownEvent(request.event))?;
        Ok(Self {
            device,
            id: request.session,
            pid,
            event,
            freq_hz: request.freq_hz,
            stopped: false,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn event(&self) -> SamplingEvent {
        self.event
    }

    /// The frequency in use, Hz.
    pub fn freq_hz(&self) -> u32 {
        self.freq_hz
    }

    /// Moves up to `max` waiting samples out of the module.
    pub fn read(&self, max: u32) -> Result<ReadBatch, ProfileError> {
        let max = max.min(abi::ADAPT_PROFILE_READ_MAX);
        let mut samples = vec![abi::AdaptSample::default(); max as usize];
        let mut request = abi::AdaptProfileRead {
            session: self.id,
            samples: samples.as_mut_ptr() as u64,
            capacity: max,
            ..Default::default()
        };
        self.device
            .ioctl(abi::ADAPT_IOC_PROFILE_READ, &mut request)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ENOENT) => ProfileError::SessionGone { session: self.id },
                _ => ProfileError::Io {
                    what: "ADAPT_IOC_PROFILE_READ",
                    source,
                },
            })?;
        samples.truncate(request.count.min(max) as usize);
        Ok(ReadBatch {
            samples,
            recorded: request.recorded,
            dropped: request.dropped,
            target_exited: request.state == abi::ADAPT_PROFILE_TARGET_EXITED,
        })
    }

    /// Stops the session. Stopping one whose target exited and was read to
    /// the end is not an error.
    pub fn stop(mut self) -> Result<(), ProfileError> {
        self.stopped = true;
        self.stop_inner()
    }

    fn stop_inner(&self) -> Result<(), ProfileError> {
        let mut request = abi::AdaptProfileStop {
            session: self.id,
            ..Default::default()
        };
        match self.device.ioctl(abi::ADAPT_IOC_PROFILE_STOP, &mut request) {
            Ok(_) => Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(source) => Err(ProfileError::Io {
                what: "ADAPT_IOC_PROFILE_STOP",
                source,
            }),
        }
    }
}

impl Drop for ProfileSession<'_> {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.stop_inner();
        }
    }
}
