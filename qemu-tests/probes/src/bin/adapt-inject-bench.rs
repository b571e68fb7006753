//! Injector benchmarks (figures, not tests). Run inside a guest:
//!
//! ```text
//! cargo vm exec -- adapt-inject-bench all
//! cargo vm exec -- adapt-inject-bench pause [--injections K]        (default 200)
//! cargo vm exec -- adapt-inject-bench call-cost [--calls N]         (default 20000000)
//! cargo vm exec -- adapt-inject-bench throughput [--seconds S]      (default 5)
//! ```
//!
//! - `pause`: the longest time a target thread is held, per injection and
//!   per revert, reported by the module, with 1, 8 and 64 threads of
//!   `adapt-crc-stress` busy calling libz's `crc32`: median and max over K
//!   inject+revert cycles.
//! - `call-cost`: ns per call of a trivial call (`crc32` of 0 bytes through
//!   a function pointer) of a function in this executable: direct, then
//!   redirected to the `crc32` segment's variant, then direct again after
//!   the revert, in one process, as ratios.
//! - `throughput`: the 8-thread `adapt-crc-stress` workload on 64 KiB
//!   buffers, bytes per second before the injection (libz), after (the
//!   segment) and after the revert, side by side, as ratios.
//!
//! Needs `adaptctl` and `adapt-crc-stress` next to this program or on PATH,
//! the library built (`adaptctl library build`) and adapt.ko loaded. Every
//! run also checks that the stress workload saw no wrong result.

use adapt_client::inject::{self, InjectRequest};
use adapt_client::{Device, DEFAULT_DEVICE_PATH};
use adapt_guest_probes::zcrc::{self, Crc32Fn};
use serde_json::Value;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// zlib's crc32 contract in this executable, the call-cost subject.
///
/// # Safety
///
/// `buf` is null or points to `len` readable bytes.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn adapt_bench_crc32(crc: u64, buf: *const u8, len: u32) -> u64 {
    // SAFETY: forwarded from the caller.
    unsafe { zcrc::table_crc32(crc, buf, len) }
}

const CONTRACT: &str = "u64(u64,const u8*,u32)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let option = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let result = match what {
        "pause" => pause(option("--injections", 200)),
        "call-cost" => call_cost(option("--calls", 20_000_000)),
        "throughput" => throughput(option("--seconds", 5)),
        "all" => pause(option("--injections", 200))
            .and_then(|()| call_cost(option("--calls", 20_000_000)))
            .and_then(|()| throughput(option("--seconds", 5))),
        other => Err(format!(
            "unknown benchmark {other} (pause, call-cost, throughput, all)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("adapt-inject-bench: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// A sibling program of this one, else the name (found on PATH).
fn program(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// `adaptctl ARGS --json`, parsed.
fn adaptctl(args: &[&str]) -> Result<Value, String> {
    let mut command = Command::new(program("adaptctl"));
    command.args(args);
    if args.first() == Some(&"inject") {
        // The benchmarks inject the best variant for this CPU, whatever the
        // in-situ measurement would decide.
        command.arg("--no-measure");
    }
    let out = command
        .arg("--json")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run adaptctl: {e}"))?;
    let doc: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("adaptctl {args:?}: no JSON ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "adaptctl {args:?} failed: {}",
            doc["error"]["message"]
        ));
    }
    Ok(doc)
}

/// The request of an `adaptctl inject --json` report.
fn request_of(doc: &Value) -> Result<InjectRequest, String> {
    let r = &doc["request"];
    let n = |k: &str| r[k].as_u64().ok_or(format!("request.{k} missing in {doc}"));
    let hex = r["expected"].as_str().ok_or("request.expected missing")?;
    let expected = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(InjectRequest {
        pid: n("pid")? as u32,
        target: n("target")?,
        variant_id: n("variant_id")?,
        entry: n("entry")? as u32,
        contract_hash: n("contract_hash")?,
        expected,
        automatic: false,
        imports: None,
    })
}

/// A running `adapt-crc-stress`, its output lines on a channel.
struct Stress {
    child: Child,
    pid: u32,
    lines: Receiver<String>,
    control: Option<PathBuf>,
}

impl Stress {
    fn start(args: &[&str], control: Option<PathBuf>) -> Result<Self, String> {
        let mut command = Command::new(program("adapt-crc-stress"));
        command.args(args).stdout(Stdio::piped());
        if let Some(c) = &control {
            command.arg("--control").arg(c);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run adapt-crc-stress: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stress = Stress {
            child,
            pid: 0,
            lines,
            control,
        };
        let ready = stress.expect("ready ")?;
        stress.pid = ready[6..]
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("bad ready line")?;
        Ok(stress)
    }

    /// The next line starting with `prefix` (30 s at most).
    fn expect(&mut self, prefix: &str) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|_| format!("adapt-crc-stress: no `{prefix}` line"))?;
            if line.starts_with("WRONG") {
                return Err(format!("adapt-crc-stress: {line}"));
            }
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
    }

    fn command(&mut self, cmd: &str) -> Result<(), String> {
        let path = self.control.as_ref().ok_or("no control FIFO")?;
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| e.to_string())?;
        writeln!(fifo, "{cmd}").map_err(|e| e.to_string())
    }

    /// (bytes, ns) totals so far.
    fn stats(&mut self) -> Result<(u64, u64), String> {
        self.command("stats")?;
        let line = self.expect("stats ")?;
        Ok((field(&line, "bytes")?, field(&line, "elapsed_ns")?))
    }

    /// Stops it and checks it saw no wrong result.
    fn finish(mut self) -> Result<String, String> {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let summary = self.expect("calls=")?;
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() || field(&summary, "wrong")? != 0 {
            return Err(format!(
                "the workload saw wrong results or failed ({status}): {summary}"
            ));
        }
        Ok(summary)
    }
}

fn field(line: &str, name: &str) -> Result<u64, String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .ok_or(format!("no {name}= in {line:?}"))
}

fn percentile(v: &mut [u64], num: usize, den: usize) -> u64 {
    v.sort_unstable();
    v.get((v.len().saturating_sub(1)) * num / den)
        .copied()
        .unwrap_or(0)
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

fn pause(injections: u64) -> Result<(), String> {
    let device = Device::open(DEFAULT_DEVICE_PATH).map_err(|e| e.to_string())?;
    println!("# pause: time target threads are held (module's measurement), {injections} inject+revert cycles per row");
    println!("threads  inject_median_us  inject_max_us  revert_median_us  revert_max_us  attempts_max  cycle_ms");
    for threads in [1usize, 8, 64] {
        let stress = Stress::start(
            &["--threads", &threads.to_string(), "--max-len", "256"],
            None,
        )?;
        let pid = stress.pid.to_string();
        let doc = adaptctl(&[
            "inject",
            "--pid",
            &pid,
            "--symbol",
            "crc32",
            "--object",
            "libz.so.1",
        ])?;
        let request = request_of(&doc)?;
        let first = doc["injection"]["id"].as_u64().ok_or("no injection id")?;
        inject::revert(&device, first).map_err(|e| e.to_string())?;
        let (mut inj, mut rev) = (Vec::new(), Vec::new());
        let mut attempts = 0;
        let start = Instant::now();
        for _ in 0..injections {
            let i = inject::inject(&device, &request).map_err(|e| e.to_string())?;
            inj.push(i.pause_ns);
            attempts = attempts.max(i.attempts);
            let r = inject::revert(&device, i.id).map_err(|e| e.to_string())?;
            rev.push(r.pause_ns);
            attempts = attempts.max(r.attempts);
        }
        let cycle_ms = start.elapsed().as_secs_f64() * 1e3 / injections.max(1) as f64;
        stress.finish()?;
        println!(
            "{threads:>7}  {:>16}  {:>13}  {:>16}  {:>13}  {attempts:>12}  {cycle_ms:>8.2}",
            us(percentile(&mut inj, 1, 2)),
            us(percentile(&mut inj, 1, 1)),
            us(percentile(&mut rev, 1, 2)),
            us(percentile(&mut rev, 1, 1)),
        );
    }
    Ok(())
}

/// ns per call of `f(0, buf, 0)` over `calls` calls.
fn time_calls(f: Crc32Fn, calls: u64) -> f64 {
    let buf = [0u8; 16];
    let start = Instant::now();
    let mut acc = 0u64;
    for i in 0..calls {
        let f = black_box(f);
        // SAFETY: 0 bytes of a 16-byte buffer.
        acc = acc.wrapping_add(unsafe { f(i, buf.as_ptr(), 0) });
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn call_cost(calls: u64) -> Result<(), String> {
    let f: Crc32Fn = adapt_bench_crc32;
    let pid = std::process::id().to_string();
    let direct = time_calls(f, calls);
    let doc = adaptctl(&[
        "inject",
        "--pid",
        &pid,
        "--symbol",
        "adapt_bench_crc32",
        "--segment",
        "crc32",
        "--function",
        "crc32",
        "--assume-contract",
        CONTRACT,
    ])?;
    let id = doc["injection"]["id"].as_u64().ok_or("no injection id")?;
    let variant = doc["variant"].as_str().unwrap_or("?").to_owned();
    // The redirected function must still be right.
    let data = b"123456789";
    // SAFETY: 9 readable bytes.
    let check = unsafe { black_box(f)(0, data.as_ptr(), 9) };
    let redirected = time_calls(f, calls);
    adaptctl(&["revert", "--id", &id.to_string()])?;
    let after = time_calls(f, calls);
    if check != 0xcbf4_3926 {
        return Err(format!(
            "the redirected crc32 returned {check:#x} for \"123456789\""
        ));
    }
    println!(
        "# call cost: crc32(i, buf, 0) through a function pointer, {calls} calls each, one process"
    );
    println!("direct_ns  redirected_ns  direct_after_revert_ns  redirected/direct  variant");
    println!(
        "{direct:>9.2}  {redirected:>13.2}  {after:>22.2}  {:>17.3}  crc32/{variant}",
        redirected / ((direct + after) / 2.0)
    );
    Ok(())
}

fn throughput(seconds: u64) -> Result<(), String> {
    let control =
        std::env::temp_dir().join(format!("adapt-inject-bench-{}.fifo", std::process::id()));
    let mut stress = Stress::start(
        &["--threads", "8", "--fixed-len", "65536"],
        Some(control.clone()),
    )?;
    let pid = stress.pid.to_string();
    let window = |stress: &mut Stress| -> Result<f64, String> {
        let (b0, t0) = stress.stats()?;
        std::thread::sleep(Duration::from_secs(seconds));
        let (b1, t1) = stress.stats()?;
        Ok((b1 - b0) as f64 / ((t1 - t0) as f64 / 1e9) / 1e6)
    };
    std::thread::sleep(Duration::from_secs(1));
    let before = window(&mut stress)?;
    let doc = adaptctl(&[
        "inject",
        "--pid",
        &pid,
        "--symbol",
        "crc32",
        "--object",
        "libz.so.1",
    ])?;
    let id = doc["injection"]["id"].as_u64().ok_or("no injection id")?;
    let variant = doc["variant"].as_str().unwrap_or("?").to_owned();
    let after = window(&mut stress)?;
    adaptctl(&["revert", "--id", &id.to_string()])?;
    let reverted = window(&mut stress)?;
    let summary = stress.finish()?;
    let _ = std::fs::remove_file(&control);
    println!("# throughput: 8 threads, crc32 of 64 KiB buffers, {seconds} s windows, MB/s");
    println!(
        "libz_before  injected  libz_after_revert  injected/before  after_revert/before  variant"
    );
    println!(
        "{before:>11.1}  {after:>8.1}  {reverted:>17.1}  {:>15.3}  {:>19.3}  crc32/{variant}",
        after / before,
        reverted / before
    );
    println!("# workload: {summary}");
    Ok(())
}
