//! Saying what the runner is doing: one line per step, and for long commands
//! a spinner with the latest line of their output (a plain line every 30 s
//! when stderr is not a terminal, as in CI). All of it goes to stderr, so a
//! guest command's output on stdout stays clean.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// How often a non-terminal run reports that a long command is still going.
const PLAIN_INTERVAL: Duration = Duration::from_secs(30);
/// How many lines of a failed command's log are shown.
const TAIL_LINES: usize = 30;

/// Prints one status line.
pub fn say(msg: impl std::fmt::Display) {
    eprintln!("vm: {msg}");
}

/// Whether to draw spinners (stderr is a terminal) or print plain lines.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// A command that failed; its full output is in `log`.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed ({status}); full log: {log}\n--- last lines of the log ---\n{tail}")]
pub struct StepFailed {
    pub what: String,
    pub status: String,
    pub log: PathBuf,
    pub tail: String,
}

/// Runs `cmd` with stdout and stderr appended to `log`, showing progress as
/// `label`. Fails with [`StepFailed`] (log path + last lines) on a non-zero
/// exit.
pub fn run_logged(label: &str, cmd: &mut Command, log: &Path) -> Result<()> {
    let start = Instant::now();
    let mut log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log file {}", log.display()))?;
    writeln!(log_file, "\n$ {cmd:?}").with_context(|| format!("cannot write {}", log.display()))?;

    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {label}: {cmd:?}"))?;

    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut readers = Vec::new();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for pipe in pipes.into_iter().flatten() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let display = Display::start(label);
    let mut last_line = String::new();
    let mut write_error = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                if let Err(err) = log_file.write_all(&line) {
                    write_error.get_or_insert(err);
                }
                let text = String::from_utf8_lossy(&line).trim().to_string();
                if !text.is_empty() {
                    display.update(&text);
                    last_line = text;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => display.tick(&last_line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for {label}"))?;
    display.finish();
    if let Some(err) = write_error {
        return Err(err).with_context(|| format!("cannot write log {}", log.display()));
    }
    if !status.success() {
        let _ = writeln!(log_file, "# {label}: {status}");
        return Err(StepFailed {
            what: label.to_string(),
            status: status.to_string(),
            log: log.to_path_buf(),
            tail: tail_of(log, TAIL_LINES),
        }
        .into());
    }
    say(format_args!("{label}: done in {}", human(start.elapsed())));
    Ok(())
}

/// The last `n` lines of a file, or a note that it cannot be read.
pub fn tail_of(path: &Path, n: usize) -> String {
    let mut text = String::new();
    match File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => {}
        Err(err) => return format!("(cannot read {}: {err})", path.display()),
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `1m 05s`, `42s`, `0.8s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else if secs >= 10 {
        format!("{secs}s")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A spinner on a terminal, periodic plain lines otherwise.
enum Display {
    Spinner(ProgressBar),
    Plain {
        label: String,
        start: Instant,
        last_report: std::cell::Cell<Instant>,
    },
}

impl Display {
    fn start(label: &str) -> Display {
        if interactive() {
            let bar = ProgressBar::new_spinner();
            // The template is a literal known to be valid; fall back to the
            // default style rather than fail if indicatif ever disagrees.
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner:.green} {prefix:.bold} [{elapsed}] {wide_msg}",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            Display::Spinner(bar)
        } else {
            say(format_args!("{label} …"));
            let now = Instant::now();
            Display::Plain {
                label: label.to_string(),
                start: now,
                last_report: std::cell::Cell::new(now),
            }
        }
    }

    fn update(&self, line: &str) {
        match self {
            Display::Spinner(bar) => bar.set_message(line.to_string()),
            Display::Plain { .. } => self.tick(line),
        }
    }

    fn tick(&self, line: &str) {
        if let Display::Plain {
            label,
            start,
            last_report,
        } = self
        {
            if last_report.get().elapsed() >= PLAIN_INTERVAL {
                last_report.set(Instant::now());
                say(format_args!(
                    "  still {label} ({}): {line}",
                    human(start.elapsed())
                ));
            }
        }
    }

    fn finish(&self) {
        if let Display::Spinner(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_step_names_its_log_and_shows_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let err = run_logged(
            "demo step",
            Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"]),
            &log,
        )
        .unwrap_err();
        let failed = err.downcast_ref::<StepFailed>().expect("a StepFailed");
        assert_eq!(failed.log, log);
        assert!(
            failed.tail.contains("one") && failed.tail.contains("two"),
            "{}",
            failed.tail
        );
        let text = err.to_string();
        assert!(
            text.contains("demo step failed") && text.contains(&log.display().to_string()),
            "{text}"
        );
    }

    #[test]
    fn successful_step_appends_to_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        run_logged("a", Command::new("echo").arg("first"), &log).unwrap();
        run_logged("b", Command::new("echo").arg("second"), &log).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("first\n") && text.contains("second\n"),
            "{text}"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(800)), "0.8s");
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(65)), "1m 05s");
    }
}
