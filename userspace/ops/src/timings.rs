//! `--timings` for `adaptctl inject`, `revert` and `auto`: where the wall
//! time of one command went, printed on stderr (stdout stays the report,
//! `--json` included); and durations written for people.
//!
//! Phases are consecutive: each [`Timings::mark`] closes the phase that
//! began at the previous mark. `startup` is the time from the process's
//! creation (its start time in `/proc/self/stat`, in clock ticks: ±10 ms on
//! a 100 Hz kernel) to the first instruction of `main`: exec, the dynamic
//! loader, relocation.

use std::time::{Duration, Instant};

/// Phase durations of one command, in order.
#[derive(Debug)]
pub struct Timings {
    enabled: bool,
    created: Instant,
    last: Instant,
    startup: Option<Duration>,
    phases: Vec<(&'static str, Duration)>,
    /// Figures the module reported (name, duration), shown after the phases.
    inside: Vec<(&'static str, Duration)>,
}

impl Timings {
    /// Starts the clock; `enabled` false makes [`Timings::print`] silent.
    pub fn start(enabled: bool) -> Self {
        // Read before the clock starts: reading /proc is not the command's.
        let startup = enabled.then(startup).flatten();
        let now = Instant::now();
        Self {
            enabled,
            created: now,
            last: now,
            startup,
            phases: Vec::new(),
            inside: Vec::new(),
        }
    }

    /// Closes the phase `name`, which began at the previous mark.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.phases.push((name, now - self.last));
        self.last = now;
    }

    /// Records a duration the module measured inside a phase (e.g. how long
    /// it held the target's threads).
    pub fn inside(&mut self, name: &'static str, took: Duration) {
        self.inside.push((name, took));
    }

    /// The phases as text, one per line.
    pub fn render(&self) -> String {
        let mut out = String::from("timings:\n");
        let line = |out: &mut String, name: &str, d: Duration| {
            out.push_str(&format!(
                "  {name:<10} {:>10.3} ms\n",
                d.as_secs_f64() * 1e3
            ));
        };
        if let Some(s) = self.startup {
            line(&mut out, "startup", s);
        }
        for (name, d) in &self.phases {
            line(&mut out, name, *d);
        }
        let total = self.last - self.created + self.startup.unwrap_or_default();
        line(&mut out, "total", total);
        for (name, d) in &self.inside {
            out.push_str(&format!(
                "  (module: {name} {:.3} ms)\n",
                d.as_secs_f64() * 1e3
            ));
        }
        out
    }

    /// Prints [`Timings::render`] on stderr when enabled.
    pub fn print(&self) {
        if self.enabled {
            eprint!("{}", self.render());
        }
    }
}

/// A duration in ns for people: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub fn duration_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// Time since this process was created, from `/proc/self/stat` (field 22,
/// start time in clock ticks since boot) and `CLOCK_BOOTTIME`.
fn startup() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: fields after it start
    // after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after ')'; the start time is field 22.
    let ticks: u64 = after.split_whitespace().nth(22 - 3)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let now = Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    );
    let started = Duration::from_nanos(ticks.checked_mul(1_000_000_000)? / hz);
    now.checked_sub(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_ns(0), "0 ns");
        assert_eq!(duration_ns(850), "850 ns");
        assert_eq!(duration_ns(12_345), "12.3 µs");
        assert_eq!(duration_ns(4_560_000), "4.56 ms");
        assert_eq!(duration_ns(1_200_000_000), "1.20 s");
    }

    #[test]
    fn phases_are_consecutive_and_named_in_order() {
        let mut t = Timings::start(true);
        std::thread::sleep(Duration::from_millis(3));
        t.mark("plan");
        t.mark("upload");
        t.inside("threads held", Duration::from_micros(1500));
        let text = t.render();
        let plan = text.find("plan").unwrap();
        let upload = text.find("upload").unwrap();
        let total = text.find("total").unwrap();
        assert!(plan < upload && upload < total, "{text}");
        assert!(t.phases[0].1 >= Duration::from_millis(3), "{text}");
        assert!(text.contains("(module: threads held 1.500 ms)"), "{text}");
    }

    #[test]
    fn startup_is_known_and_plausible() {
        // This test process started before the test ran, and less than an
        // hour ago.
        let s = startup().expect("start time from /proc/self/stat");
        assert!(s < Duration::from_secs(3600), "{s:?}");
    }
}
