//! The kernel console log scanner: finds the first sign that the kernel went
//! wrong (WARN, BUG, oops, panic, lockdep, atomic sleep, Rust panic, UBSAN,
//! KASAN, kmemleak), with the message lines that explain it.

/// Substrings that mark a kernel problem anywhere in a console line.
const ANYWHERE: &[&str] = &[
    "Kernel panic",
    "kernel BUG at",
    "general protection fault",
    "possible circular locking",
    "inconsistent lock state",
    "possible recursive locking",
    "suspicious RCU usage",
    "bad unlock balance",
    "held lock freed",
    "lock held when returning to user space",
    "sleeping function called from invalid context",
    "scheduling while atomic",
    "panicked at",
    "UBSAN:",
    "KASAN:",
    "unreferenced object",
    "new suspected memory leaks",
    "list_add corruption",
    "list_del corruption",
    "refcount_t:",
    "Unable to handle kernel",
    "stack-protector:",
];

/// Prefixes that mark a kernel problem at the start of a message.
const AT_START: &[&str] = &["WARNING:", "BUG:", "Oops", "BUG ", "INFO: task "];

/// A problem found in a console log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelProblem {
    /// 1-based line number of the first offending line.
    pub line_number: usize,
    /// That line, as logged.
    pub line: String,
    /// The message lines printed just before it that belong to the same
    /// report (a WARN's text comes between `cut here` and `WARNING:`).
    pub preceding: Vec<String>,
}

impl std::fmt::Display for KernelProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line_number, self.line)?;
        for line in &self.preceding {
            write!(f, "\n  (preceded by: {line})")?;
        }
        Ok(())
    }
}

/// Strips a `[   12.345678]` timestamp (and the space after it).
pub fn message_of(line: &str) -> &str {
    let trimmed = line.trim_start_matches('\r');
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let stamp = &rest[..end];
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return rest[end + 1..].trim_start();
            }
        }
    }
    trimmed
}

/// Whether one console line reports a kernel problem.
pub fn is_problem(line: &str) -> bool {
    let msg = message_of(line);
    AT_START.iter().any(|p| msg.starts_with(p)) || ANYWHERE.iter().any(|p| msg.contains(p))
}

/// The first problem in a console log, if any.
pub fn scan(log: &str) -> Option<KernelProblem> {
    let lines: Vec<&str> = log.lines().collect();
    let index = lines.iter().position(|l| is_problem(l))?;
    // Collect the lines since a "cut here" marker a few lines above (a
    // WARN(…, "text") prints the text between the two).
    let window_start = index.saturating_sub(4);
    let preceding = lines[window_start..index]
        .iter()
        .rposition(|l| message_of(l).contains("[ cut here ]"))
        .map(|pos| {
            lines[window_start + pos + 1..index]
                .iter()
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect()
        })
        .unwrap_or_default();
    Some(KernelProblem {
        line_number: index + 1,
        line: lines[index].trim_end_matches('\r').to_string(),
        preceding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN_BOOT: &str = "\
[    0.000000] Linux version 6.12.57 (root@host) (Debian clang version 14.0.6, Debian LLD 14.0.6) #1 SMP
[    0.000000] Command line: console=ttyS0 panic_on_warn=1 oops=panic panic=-1
[    0.010000] kmemleak: Kernel memory leak detector disabled
[    0.120000] smpboot: Allowing 2 CPUs, 0 hotplug CPUs
[    0.300000] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar
[    0.300001] ... MAX_LOCKDEP_SUBCLASSES:  8
[    0.700000] 9pnet: Installing 9P2000 support
[    0.900000] Run /init as init process
[    1.800000] adapt: loading out-of-tree module taints kernel.
[    1.810000] adapt: /dev/adapt ready
[    2.500000] reboot: Restarting system
";

    const WARN: &str = "\
[    1.100000] Run /init as init process
[    2.210000] warn_test: loading out-of-tree module taints kernel.
[    2.214711] ------------[ cut here ]------------
[    2.215012] adapt test: deliberate warning
[    2.215377] WARNING: CPU: 1 PID: 71 at /tmp/w/warn_test.c:9 warn_test_init+0x15/0x30 [warn_test]
[    2.216020] Modules linked in: warn_test(O+)
[    2.216311] CPU: 1 UID: 0 PID: 71 Comm: insmod Tainted: G           O       6.12.57 #1
[    2.217403] RIP: 0010:warn_test_init+0x15/0x30 [warn_test]
[    2.219000] Kernel panic - not syncing: kernel: panic_on_warn set ...
";

    const LOCKDEP: &str = "\
[   12.000000] adapt: inject pid 88
[   12.100000]
[   12.100001] ======================================================
[   12.100002] WARNING: possible circular locking dependency detected
[   12.100003] 6.12.57 #1 Tainted: G           O
[   12.100004] ------------------------------------------------------
[   12.100005] adaptctl/88 is trying to acquire lock:
";

    #[test]
    fn clean_boot_has_no_problem() {
        assert_eq!(scan(CLEAN_BOOT), None);
    }

    #[test]
    fn taint_line_is_not_a_problem() {
        assert!(!is_problem(
            "[    1.8] adapt: loading out-of-tree module taints kernel."
        ));
        assert!(!is_problem("adapt: module verification failed: signature and/or required key missing - tainting kernel"));
    }

    #[test]
    fn warn_is_found_with_its_message() {
        let p = scan(WARN).unwrap();
        assert_eq!(p.line_number, 5);
        assert!(p.line.contains("WARNING: CPU: 1 PID: 71 at"));
        assert_eq!(
            p.preceding,
            vec!["[    2.215012] adapt test: deliberate warning".to_string()]
        );
        assert!(p.to_string().contains("adapt test: deliberate warning"));
    }

    #[test]
    fn lockdep_report_is_found() {
        let p = scan(LOCKDEP).unwrap();
        assert!(p
            .line
            .contains("possible circular locking dependency detected"));
        assert!(p.preceding.is_empty());
    }

    #[test]
    fn other_reports_are_found() {
        for line in [
            "[    3.1] BUG: sleeping function called from invalid context at mm/slab.c:123",
            "[    3.1] BUG: kernel NULL pointer dereference, address: 0000000000000008",
            "[    3.1] Oops: general protection fault, probably for non-canonical address",
            "[    3.1] kernel BUG at mm/usercopy.c:102!",
            "[    3.1] rust_kernel: panicked at kmod/inject.rs:10:5:",
            "[    3.1] UBSAN: shift-out-of-bounds in kmod/shim.c:40:12",
            "[    3.1] BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2",
            "[    3.1] unreferenced object 0xffff888003b0c000 (size 64):",
            "[    3.1] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            "[    3.1] WARNING: inconsistent lock state",
            "[    3.1] WARNING: possible recursive locking detected",
            "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
        ] {
            assert!(is_problem(line), "{line}");
        }
    }

    #[test]
    fn timestamps_are_stripped() {
        assert_eq!(message_of("[   12.100002] WARNING: x"), "WARNING: x");
        assert_eq!(message_of("WARNING: x"), "WARNING: x");
        assert_eq!(message_of("[adapt] hello"), "[adapt] hello");
    }
}
