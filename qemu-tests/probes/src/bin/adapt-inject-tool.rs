//! Low-level helpers for the injector tests, below adaptctl:
//!
//! ```text
//! adapt-inject-tool peek PID ADDR LEN        hex of LEN bytes at ADDR (/proc/PID/mem)
//! adapt-inject-tool poke PID ADDR [BYTE]     write BYTE (default: the byte already
//!                                            there) at ADDR through /proc/PID/mem, as a
//!                                            debugger sets a breakpoint: poke=refused|written
//! adapt-inject-tool cycle REQUEST.json N     N inject+revert cycles of the request
//!                                            `adaptctl inject --json` made; prints a
//!                                            JSON summary (pauses in ns)
//! adapt-inject-tool inject REQUEST.json [--pid P] [--target ADDR] [--expected HEX] [--auto]
//!                                            one ADAPT_IOC_INJECT with overrides:
//!                                            inject=ok id=N | inject=error kind=K errno=E
//! adapt-inject-tool revert ID                revert=ok | revert=error kind=K
//! adapt-inject-tool json FILE a.b.0.c        one value of a JSON document (numbers in
//!                                            decimal, `len` of an array: its length)
//! ```
//!
//! REQUEST.json is the output of `adaptctl inject --json` (its `request`
//! object). Addresses are hex (`0x…`) or decimal.

use adapt_client::inject::{self, InjectRequest};
use adapt_client::library::hex;
use adapt_client::{Device, InjectError, DEFAULT_DEVICE_PATH};
use serde_json::{json, Value};
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("adapt-inject-tool: {msg}");
            ExitCode::from(2)
        }
    }
}

fn number(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("not a number: {text}"))
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .ok_or("missing argument (see the source's usage)".to_owned())
    };
    match arg(0)? {
        "peek" => {
            let (pid, addr, len) = (number(arg(1)?)?, number(arg(2)?)?, number(arg(3)?)?);
            let mem = std::fs::File::open(format!("/proc/{pid}/mem")).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; len as usize];
            mem.read_exact_at(&mut buf, addr)
                .map_err(|e| format!("read {addr:#x}: {e}"))?;
            println!("{}", hex(&buf));
            Ok(ExitCode::SUCCESS)
        }
        "poke" => {
            let (pid, addr) = (number(arg(1)?)?, number(arg(2)?)?);
            let mem = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/{pid}/mem"))
                .map_err(|e| e.to_string())?;
            let mut byte = [0u8];
            mem.read_exact_at(&mut byte, addr)
                .map_err(|e| format!("read {addr:#x}: {e}"))?;
            if let Some(b) = args.get(3) {
                byte[0] = u8::try_from(number(b)?).map_err(|_| format!("not a byte: {b}"))?;
            }
            match mem.write_at(&byte, addr) {
                Ok(1) => println!("poke=written"),
                Ok(n) => println!("poke=refused wrote={n}"),
                Err(e) => println!("poke=refused error={e}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        "cycle" => cycle(&request_from(arg(1)?)?, number(arg(2)?)?),
        "inject" => {
            let mut request = request_from(arg(1)?)?;
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                match flag.as_str() {
                    "--auto" => request.automatic = true,
                    "--pid" => {
                        request.pid = number(rest.next().ok_or("--pid needs a value")?)? as u32
                    }
                    "--target" => {
                        request.target = number(rest.next().ok_or("--target needs a value")?)?
                    }
                    "--expected" => {
                        let hex = rest.next().ok_or("--expected needs a value")?;
                        request.expected = (0..hex.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                            .collect::<Result<Vec<u8>, _>>()
                            .map_err(|e| format!("--expected {hex}: {e}"))?;
                    }
                    other => return Err(format!("unknown option {other}")),
                }
            }
            let device = open()?;
            match inject::inject(&device, &request) {
                Ok(i) => println!(
                    "inject=ok id={} threads={} pause_ns={}",
                    i.id, i.threads, i.pause_ns
                ),
                Err(e) => println!("inject=error kind={} message={e}", e.kind()),
            }
            Ok(ExitCode::SUCCESS)
        }
        "revert" => {
            let id = number(arg(1)?)?;
            let device = open()?;
            match inject::revert(&device, id) {
                Ok(r) => println!("revert=ok pause_ns={}", r.pause_ns),
                Err(e) => println!("revert=error kind={} message={e}", e.kind()),
            }
            Ok(ExitCode::SUCCESS)
        }
        "json" => {
            let path = arg(1)?;
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            let mut value: Value =
                serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
            for key in arg(2)?.split('.') {
                value = match (&value, key.parse::<usize>()) {
                    (Value::Array(a), _) if key == "len" => json!(a.len()),
                    (Value::Array(a), Ok(i)) => a.get(i).cloned().unwrap_or(Value::Null),
                    _ => value.get(key).cloned().unwrap_or(Value::Null),
                };
            }
            match value {
                Value::String(s) => println!("{s}"),
                other => println!("{other}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!(
            "unknown command {other} (peek, poke, cycle, inject, revert, json)"
        )),
    }
}

fn open() -> Result<Device, String> {
    Device::open(DEFAULT_DEVICE_PATH).map_err(|e| e.to_string())
}

/// The request inside `adaptctl inject --json`'s report.
fn request_from(path: &str) -> Result<InjectRequest, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let r = &doc["request"];
    let field = |name: &str| {
        r[name]
            .as_u64()
            .ok_or(format!("{path}: request.{name} missing"))
    };
    let expected = r["expected"]
        .as_str()
        .ok_or(format!("{path}: request.expected missing"))?;
    let unhex = |text: &str| {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| e.to_string()))
            .collect::<Result<Vec<u8>, _>>()
    };
    let expected = unhex(expected)?;
    // A segment with imports: the placement, trampoline and slots adaptctl
    // chose (the module reuses the retired mapping they describe).
    let imports = match r.get("imports") {
        Some(i) if !i.is_null() => Some(adapt_client::inject::InjectImports {
            segment_addr: i["segment_addr"]
                .as_u64()
                .ok_or(format!("{path}: request.imports.segment_addr missing"))?,
            trampoline: unhex(i["trampoline"].as_str().unwrap_or_default())?,
            relocated: unhex(i["relocated"].as_str().unwrap_or_default())?,
            slots: i["slots"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(InjectRequest {
        pid: field("pid")? as u32,
        target: field("target")?,
        variant_id: field("variant_id")?,
        entry: field("entry")? as u32,
        contract_hash: field("contract_hash")?,
        expected,
        automatic: false,
        imports,
    })
}

/// Inject and revert `cycles` times; stops at the first error.
fn cycle(request: &InjectRequest, cycles: u64) -> Result<ExitCode, String> {
    let device = open()?;
    let (mut inject_pause, mut revert_pause) = (Vec::new(), Vec::new());
    let (mut max_threads, mut max_attempts) = (0u32, 0u32);
    let start = Instant::now();
    let mut failure: Option<(u64, &str, InjectError)> = None;
    for i in 0..cycles {
        let injected = match inject::inject(&device, request) {
            Ok(x) => x,
            Err(e) => {
                failure = Some((i, "inject", e));
                break;
            }
        };
        inject_pause.push(injected.pause_ns);
        max_threads = max_threads.max(injected.threads);
        max_attempts = max_attempts.max(injected.attempts);
        match inject::revert(&device, injected.id) {
            Ok(r) => {
                revert_pause.push(r.pause_ns);
                max_attempts = max_attempts.max(r.attempts);
            }
            Err(e) => {
                failure = Some((i, "revert", e));
                break;
            }
        }
    }
    let doc = json!({
        "cycles_done": revert_pause.len(),
        "cycles_asked": cycles,
        "seconds": start.elapsed().as_secs_f64(),
        "inject_pause_ns": stats(&mut inject_pause),
        "revert_pause_ns": stats(&mut revert_pause),
        "max_threads": max_threads,
        "max_attempts": max_attempts,
        "error": failure.as_ref().map(|(i, what, e)| json!({"cycle": i, "during": what, "kind": e.kind(), "message": e.to_string()})),
    });
    println!("{doc}");
    Ok(if failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Median, max, min and count of `values` (sorted in place).
pub fn stats(values: &mut [u64]) -> Value {
    values.sort_unstable();
    match values {
        [] => json!({"count": 0}),
        v => {
            json!({"count": v.len(), "median": v[v.len() / 2], "max": v[v.len() - 1], "min": v[0]})
        }
    }
}
