//! Links adaptctl with packed relative relocations (`DT_RELR`, glibc 2.36
//! and later: Debian 12's).
//!
//! adaptctl is a position-independent executable, so the dynamic loader
//! relocates about 9,000 pointers (vtables, string tables) at every start.
//! As `.rela.dyn` entries that table is 218 KB the loader must read; packed
//! it is 2 KB. Measured in the TCG guest on the release kernel
//! (`cargo vm exec --kernel release`), `adaptctl --version` took a median
//! of 157–168 ms instead of 195–227 ms (`/bin/true`: 99–132 ms). A non-PIE
//! link saves a little more (124 ms) but gives up address-space
//! randomization of a program that runs as root and parses files its
//! targets chose, so it is not used.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=adaptctl=-Wl,-z,pack-relative-relocs");
    }
}
