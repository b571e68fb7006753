//! Instruction pointer → (function, object file).

use adapt_elf::{ElfObject, FunctionsByAddress, Mapping, ProcessMaps};
use serde::Serialize;
use std::collections::HashMap;
use std::io;

/// Where a sample landed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Location {
    /// Function name, or `[object+0xoffset]` when no symbol covers it,
    /// `[kernel]` for samples taken in kernel mode, the mapping's name for
    /// pseudo-mappings (`[vdso]`, `[adapt:…]`), `[unknown]` outside every
    /// mapping.
    pub function: String,
    /// Path of the object file, or the pseudo-name.
    pub object: String,
}

impl Location {
    fn special(name: &str) -> Self {
        Self {
            function: name.to_owned(),
            object: name.to_owned(),
        }
    }
}

/// Symbolizes instruction pointers of one process.
pub struct Symbolizer {
    maps: ProcessMaps,
    /// Symbols per object path; `None` when the file could not be read.
    objects: HashMap<String, Option<FunctionsByAddress>>,
}

impl Symbolizer {
    /// Takes a first snapshot of the process's mappings.
    pub fn new(pid: u32) -> io::Result<Self> {
        Ok(Self::with_maps(ProcessMaps::read(pid)?))
    }

    /// A symbolizer over a given snapshot (tests, exited processes).
    pub fn with_maps(maps: ProcessMaps) -> Self {
        Self {
            maps,
            objects: HashMap::new(),
        }
    }

    /// Re-reads the mappings (new libraries, new segments). Keeps the old
    /// snapshot when the process is gone.
    pub fn refresh(&mut self) -> bool {
        match ProcessMaps::read(self.maps.pid) {
            Ok(maps) => {
                self.maps = maps;
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the current snapshot covers `ip`.
    pub fn covers(&self, ip: u64) -> bool {
        self.maps.find(ip).is_some()
    }

    /// The mappings snapshot in use.
    pub fn maps(&self) -> &ProcessMaps {
        &self.maps
    }

    /// Where `ip` lies. `in_kernel` samples are all `[kernel]`.
    pub fn locate(&mut self, ip: u64, in_kernel: bool) -> Location {
        if in_kernel {
            return Location::special("[kernel]");
        }
        let Some(mapping) = self.maps.find(ip).cloned() else {
            return Location::special("[unknown]");
        };
        if !mapping.is_file() {
            return if mapping.name.is_empty() {
                Location::special("[anonymous]")
            } else {
                Location::special(&mapping.name)
            };
        }
        let file_offset = ip - mapping.start + mapping.offset;
        let function = self
            .symbols(&mapping)
            .and_then(|symbols| {
                let vaddr = symbols.vaddr_of_offset(file_offset)?;
                symbols.function_at(vaddr).map(|(name, _)| name.to_owned())
            })
            .unwrap_or_else(|| format!("[{}+{:#x}]", mapping.short_name(), file_offset));
        Location {
            function,
            object: mapping.name.clone(),
        }
    }

    fn symbols(&mut self, mapping: &Mapping) -> Option<&FunctionsByAddress> {
        let maps = &self.maps;
        self.objects
            .entry(mapping.name.clone())
            .or_insert_with(|| {
                let elf = ElfObject::open(&maps.open_path(&mapping.name)).ok()?;
                Some(FunctionsByAddress::new(elf.into_facts()))
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    #[no_mangle]
    extern "C" fn adapt_symbolizer_probe() -> u64 {
        std::hint::black_box(42)
    }

    #[test]
    fn symbolizes_a_function_of_this_running_pie_process() {
        let mut symbolizer = Symbolizer::new(std::process::id()).unwrap();
        let ip = adapt_symbolizer_probe as *const () as u64 + 1;
        let location = symbolizer.locate(ip, false);
        assert_eq!(location.function, "adapt_symbolizer_probe");
        assert_eq!(
            std::path::Path::new(&location.object)
                .canonicalize()
                .unwrap(),
            std::env::current_exe().unwrap().canonicalize().unwrap()
        );
        assert_eq!(adapt_symbolizer_probe(), 42);
    }

    #[test]
    fn symbolizes_a_shared_library_function() {
        // libc's `getpid` lives in a shared library mapped into every test.
        let ip = libc_getpid as *const () as u64;
        let mut symbolizer = Symbolizer::new(std::process::id()).unwrap();
        let location = symbolizer.locate(ip, false);
        assert!(location.object.contains("libc.so"), "{location:?}");
        assert!(location.function.contains("getpid"), "{location:?}");
    }

    #[test]
    fn kernel_unknown_and_anonymous_samples_are_named() {
        let maps = ProcessMaps::parse(
            1,
            "1000-2000 r-xp 00000000 00:00 0 \n3000-4000 r-xs 00000000 00:0f 9 [adapt:crc32-pclmul]\n",
        );
        let mut s = Symbolizer::with_maps(maps);
        assert_eq!(s.locate(0x1500, true).function, "[kernel]");
        assert_eq!(s.locate(0x1500, false).function, "[anonymous]");
        assert_eq!(s.locate(0x3004, false).function, "[adapt:crc32-pclmul]");
        assert_eq!(s.locate(0x9000, false).function, "[unknown]");
    }

    #[test]
    fn a_file_without_usable_symbols_gives_object_plus_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.bin");
        std::fs::write(&path, b"not an elf").unwrap();
        let maps = ProcessMaps::parse(
            u32::MAX,
            &format!("1000-2000 r-xp 00004000 00:1f 5 {}\n", path.display()),
        );
        let mut s = Symbolizer::with_maps(maps);
        let location = s.locate(0x1010, false);
        assert_eq!(location.function, "[blob.bin+0x4010]");
        assert_eq!(location.object, path.display().to_string());
    }

    extern "C" {
        #[link_name = "getpid"]
        fn libc_getpid() -> i32;
    }
}
