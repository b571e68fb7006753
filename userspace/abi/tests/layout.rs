//! The ABI is a contract with already-built modules and programs: these
//! numbers may only change together with `ADAPT_ABI_VERSION`.

use adapt_abi::*;
use core::mem::{align_of, offset_of, size_of};

#[test]
fn version_struct_layout_is_stable() {
    assert_eq!(size_of::<AdaptVersion>(), 80);
    assert_eq!(align_of::<AdaptVersion>(), 8);
    assert_eq!(offset_of!(AdaptVersion, flags), 0);
    assert_eq!(offset_of!(AdaptVersion, abi_version), 4);
    assert_eq!(offset_of!(AdaptVersion, capabilities), 8);
    assert_eq!(offset_of!(AdaptVersion, module_version), 16);
    assert_eq!(offset_of!(AdaptVersion, reserved), 48);
}

#[test]
fn ioctl_numbers_are_stable() {
    // _IOWR(0xAD, 0x00, 80 bytes)
    assert_eq!(ADAPT_IOC_VERSION, 0xC050_AD00);
    // 2: injection states stale/retired, the list's flags and retired count.
    // 3: variants with imports (nimports on upload; segment address,
    // trampoline and import slots on inject; their addresses in the list).
    // 4: per-injection data areas (data_len on upload, data_addr and
    // data_len in the list).
    assert_eq!(ADAPT_ABI_VERSION, 4);
}

#[test]
fn ioctl_number_fields_round_trip() {
    let cmd = ADAPT_IOC_VERSION;
    assert_eq!(ioc_dir(cmd), IOC_READ | IOC_WRITE);
    assert_eq!(ioc_type(cmd), ADAPT_IOC_MAGIC);
    assert_eq!(ioc_nr(cmd), ADAPT_NR_VERSION);
    assert_eq!(ioc_size(cmd), size_of::<AdaptVersion>());
    // Same encoding as the C macros for a well-known command:
    // FS_IOC_GETFLAGS = _IOR('f', 1, long) = 0x80086601.
    assert_eq!(ioc(IOC_READ, b'f' as u32, 1, 8), 0x8008_6601);
}

#[test]
fn capability_bits_are_distinct() {
    assert_eq!(
        ADAPT_CAP_SAMPLING_HW_CYCLES & ADAPT_CAP_SAMPLING_SW_CLOCK,
        0
    );
    assert_eq!(ADAPT_CAP_ALL.count_ones(), 2);
}

#[test]
fn module_version_string_stops_at_nul() {
    let mut v = AdaptVersion::default();
    v.module_version[..5].copy_from_slice(b"0.1.0");
    assert_eq!(v.module_version_str(), Some("0.1.0"));
    v.module_version = [b'x'; ADAPT_MODULE_VERSION_LEN];
    assert_eq!(
        v.module_version_str().map(str::len),
        Some(ADAPT_MODULE_VERSION_LEN)
    );
    v.module_version[0] = 0xff;
    assert_eq!(v.module_version_str(), None);
}

#[test]
fn profiler_structs_layout_is_stable() {
    assert_eq!(size_of::<AdaptProfileStart>(), 56);
    assert_eq!(offset_of!(AdaptProfileStart, session), 16);
    assert_eq!(offset_of!(AdaptProfileStart, reserved), 24);
    assert_eq!(size_of::<AdaptProfileStop>(), 32);
    assert_eq!(size_of::<AdaptSample>(), 24);
    assert_eq!(offset_of!(AdaptSample, tid), 16);
    assert_eq!(offset_of!(AdaptSample, cpu), 20);
    assert_eq!(offset_of!(AdaptSample, flags), 22);
    assert_eq!(size_of::<AdaptProfileRead>(), 72);
    assert_eq!(offset_of!(AdaptProfileRead, recorded), 24);
    assert_eq!(offset_of!(AdaptProfileRead, state), 40);
    assert_eq!(offset_of!(AdaptProfileRead, reserved), 56);
}

#[test]
fn profiler_ioctl_numbers_are_stable() {
    assert_eq!(ADAPT_IOC_PROFILE_START, 0xC038_AD10);
    assert_eq!(ADAPT_IOC_PROFILE_STOP, 0xC020_AD11);
    assert_eq!(ADAPT_IOC_PROFILE_READ, 0xC048_AD12);
}

// The default frequency lies inside the accepted range and the module keeps
// at least 16 sessions: checked when the test compiles.
const _: () = {
    assert!(ADAPT_PROFILE_FREQ_MIN <= ADAPT_PROFILE_FREQ_DEFAULT);
    assert!(ADAPT_PROFILE_FREQ_DEFAULT <= ADAPT_PROFILE_FREQ_MAX);
    assert!(ADAPT_PROFILE_MAX_SESSIONS >= 16);
};

#[test]
fn library_structs_layout_is_stable() {
    assert_eq!(size_of::<AdaptSegmentReloc>(), 16);
    assert_eq!(size_of::<AdaptSegmentEntry>(), 80);
    assert_eq!(offset_of!(AdaptSegmentEntry, symbol), 16);
    assert_eq!(size_of::<AdaptLibraryLoad>(), 216);
    assert_eq!(offset_of!(AdaptLibraryLoad, hash), 72);
    assert_eq!(offset_of!(AdaptLibraryLoad, code), 112);
    assert_eq!(offset_of!(AdaptLibraryLoad, code_len), 144);
    assert_eq!(offset_of!(AdaptLibraryLoad, data_len), 168);
    assert_eq!(offset_of!(AdaptLibraryLoad, pad), 172);
    assert_eq!(offset_of!(AdaptLibraryLoad, id), 176);
    assert_eq!(size_of::<AdaptLibraryUnload>(), 32);
    assert_eq!(size_of::<AdaptLibraryInfo>(), 136);
    assert_eq!(size_of::<AdaptLibraryList>(), 40);
}

#[test]
fn library_ioctl_numbers_are_stable() {
    assert_eq!(ADAPT_IOC_LIBRARY_LOAD, 0xC0D8_AD20);
    assert_eq!(ADAPT_IOC_LIBRARY_UNLOAD, 0xC020_AD21);
    assert_eq!(ADAPT_IOC_LIBRARY_LIST, 0xC028_AD22);
}

#[test]
fn cpu_feature_bits_follow_the_name_table() {
    assert_eq!(cpu_feature_bit("sse3"), Some(1));
    assert_eq!(cpu_feature_bit("avx2"), Some(1 << 8));
    assert_eq!(cpu_feature_bit("gfni"), Some(1 << 25));
    assert_eq!(cpu_feature_bit("mmx"), None);
    assert_eq!(
        ADAPT_CPU_FEATURES_ALL.count_ones() as usize,
        ADAPT_CPU_FEATURE_NAMES.len()
    );
}

#[test]
fn name_fields_keep_a_terminating_nul() {
    let f: [u8; ADAPT_NAME_LEN] = name_field("crc32").unwrap();
    assert_eq!(name_str(&f), Some("crc32"));
    assert!(name_field::<ADAPT_NAME_LEN>(&"x".repeat(ADAPT_NAME_LEN)).is_none());
    assert!(name_field::<ADAPT_NAME_LEN>(&"x".repeat(ADAPT_NAME_LEN - 1)).is_some());
}

#[test]
fn injection_structs_layout_is_stable() {
    assert_eq!(size_of::<AdaptInject>(), 216);
    assert_eq!(offset_of!(AdaptInject, imports), 88);
    assert_eq!(offset_of!(AdaptInject, relocated), 104);
    assert_eq!(offset_of!(AdaptInject, trampoline), 120);
    assert_eq!(offset_of!(AdaptInject, reserved), 184);
    assert_eq!(offset_of!(AdaptInject, expected), 40);
    assert_eq!(offset_of!(AdaptInject, id), 56);
    assert_eq!(size_of::<AdaptRevert>(), 40);
    assert_eq!(size_of::<AdaptInjectionInfo>(), 192);
    assert_eq!(offset_of!(AdaptInjectionInfo, trampoline_addr), 152);
    assert_eq!(offset_of!(AdaptInjectionInfo, data_addr), 176);
    assert_eq!(offset_of!(AdaptInjectionInfo, data_len), 184);
    assert_eq!(offset_of!(AdaptInjectionInfo, original), 56);
    assert_eq!(offset_of!(AdaptInjectionInfo, segment), 88);
    assert_eq!(size_of::<AdaptInjectionList>(), 40);
    assert_eq!(offset_of!(AdaptInjectionList, pid), 20);
    assert_eq!(offset_of!(AdaptInjectionList, flags), 24);
    assert_eq!(offset_of!(AdaptInjectionList, retired), 28);
    assert_eq!(offset_of!(AdaptInjectionList, reserved), 32);
    assert_eq!(offset_of!(AdaptPolicy, uids), 40);
    assert_eq!(offset_of!(AdaptPolicy, comms), 104);
    assert_eq!(offset_of!(AdaptPolicy, exes), 360);
    assert_eq!(offset_of!(AdaptPolicy, segments), 2408);
    assert_eq!(size_of::<AdaptPolicy>(), 2952);
}

#[test]
fn injection_ioctl_numbers_are_stable() {
    assert_eq!(ADAPT_IOC_INJECT, 0xC0D8_AD30);
    assert_eq!(ADAPT_IOC_REVERT, 0xC028_AD31);
    assert_eq!(ADAPT_IOC_INJECTION_LIST, 0xC028_AD32);
    assert_eq!(ADAPT_IOC_POLICY_GET, 0xCB88_AD40);
    assert_eq!(ADAPT_IOC_POLICY_SET, 0xCB88_AD41);
}

#[test]
fn the_import_layout_follows_the_segment_format_rule() {
    let l = adapt_import_layout(230, 1);
    assert_eq!(l.trampoline_offset, 240);
    assert_eq!(l.import_table_offset, 4096);
    assert_eq!(l.import_table_pages, 4096);
    assert_eq!(l.rodata_offset, 8192);
    // The trampoline space spills into a second code page.
    let l = adapt_import_layout(4050, 64);
    assert_eq!((l.trampoline_offset, l.import_table_offset), (4064, 8192));
    assert_eq!(l.import_table_pages, 4096);
}
