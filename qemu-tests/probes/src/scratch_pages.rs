//! Three adjacent scratch pages for feeding the kernel bad pointers:
//! writable, read-only (zeroed), and unmapped (a hole).

/// The pages; they stay mapped for the life of the program.
pub struct ScratchPages {
    base: usize,
}

impl ScratchPages {
    /// Bytes of one page.
    pub const SIZE: usize = 4096;

    /// Maps the three pages and makes the second read-only and the third a
    /// hole.
    pub fn new() -> Self {
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                3 * Self::SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap scratch pages");
        let base = base as usize;
        // SAFETY: both ranges are inside the mapping just created.
        unsafe {
            assert_eq!(
                libc::mprotect((base + Self::SIZE) as *mut _, Self::SIZE, libc::PROT_READ),
                0
            );
            assert_eq!(
                libc::munmap((base + 2 * Self::SIZE) as *mut _, Self::SIZE),
                0
            );
        }
        Self { base }
    }

    /// Start of the writable page.
    pub fn rw(&self) -> usize {
        self.base
    }

    /// Start of the read-only page.
    pub fn read_only(&self) -> usize {
        self.base + Self::SIZE
    }

    /// Start of the hole.
    pub fn unmapped(&self) -> usize {
        self.base + 2 * Self::SIZE
    }
}

impl Default for ScratchPages {
    fn default() -> Self {
        Self::new()
    }
}
