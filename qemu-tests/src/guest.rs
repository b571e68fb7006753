//! Booting one throw-away guest that runs one command (or a shell).
//!
//! The guest sees the host's root read-only, a fresh tmpfs on /tmp and /run,
//! the workspace (and target directory) at their own paths, and its run
//! directory writable at its own path (`$ADAPT_RUN_DIR`). adapt.ko is loaded
//! with insmod before the command unless [`Guest::without_module`] is used.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::artifacts::Artifacts;
pub use crate::qemu::Accel;
use crate::qemu::{check_kvm, QemuConfig, RootOverlay, Share};
use crate::stage2::{valid_env_name, Action, Stage2};
use crate::workspace::Workspace;
use crate::{console, exit_code, marker, progress, rundir};

/// Default guest timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);
/// Default guest memory.
pub const DEFAULT_MEM_MIB: u32 = 1024;
/// Default vCPU count.
pub const DEFAULT_SMP: u32 = 2;

/// Where the command's output is shown while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echo {
    Off,
    /// `print!`: captured by libtest in tests.
    Captured,
    /// Written to fd 1; write errors turn the echo off.
    Stdout,
}

impl Echo {
    /// Shows `text`; returns the echo to use from now on.
    fn show(self, text: &str) -> Echo {
        match self {
            Echo::Off => Echo::Off,
            Echo::Captured => {
                print!("{text}");
                let _ = std::io::stdout().flush();
                Echo::Captured
            }
            Echo::Stdout => {
                let mut out = std::io::stdout().lock();
                match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                    Ok(()) => Echo::Stdout,
                    Err(_) => Echo::Off,
                }
            }
        }
    }
}

/// Extra kernel parameters for every guest, for debugging the runner
/// (`ADAPT_VM_KERNEL_ARGS=initcall_debug cargo vm exec …`).
pub const KERNEL_ARGS_ENV: &str = "ADAPT_VM_KERNEL_ARGS";

/// Guests boot one at a time per process: two vCPUs already use both cores.
static ONE_GUEST_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A guest to boot; configure with the builder methods, then [`Guest::run`].
#[derive(Debug, Clone)]
pub struct Guest {
    artifacts: Artifacts,
    smp: u32,
    mem_mib: u32,
    timeout: Option<Duration>,
    accel: Accel,
    load_module: bool,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    echo: Echo,
    kernel_args: Vec<String>,
    writable_root: bool,
}

/// What a guest run produced.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    /// The command's exit status; -1 when the guest reported none (see
    /// `exit_reported`).
    pub status: i32,
    /// Everything the command wrote to stdout and stderr (one serial port).
    pub stdout: String,
    /// The first kernel problem in the console log, with its message.
    pub kernel_problem: Option<String>,
    /// The kernel console log (kept).
    pub console_log: PathBuf,
    /// The guest was killed at its timeout.
    pub timed_out: bool,
    /// The guest reported the command's exit status.
    pub exit_reported: bool,
    /// Why the command never ran (`insmod adapt.ko` failed, …).
    pub setup_error: Option<String>,
    /// The run directory (stage2.sh, console.log, qemu.stderr).
    pub run_dir: PathBuf,
    /// Wall time from QEMU start to its end.
    pub elapsed: Duration,
}

impl Guest {
    /// A guest using what `cargo vm build` built. Fails with "run `cargo vm
    /// build` first" when that has not happened.
    pub fn new() -> Result<Guest> {
        let ws = Workspace::locate()?;
        Ok(Guest::with_artifacts(Artifacts::load(&ws)?))
    }

    /// A guest using these artifacts.
    pub fn with_artifacts(artifacts: Artifacts) -> Guest {
        Guest {
            artifacts,
            smp: DEFAULT_SMP,
            mem_mib: DEFAULT_MEM_MIB,
            timeout: Some(DEFAULT_TIMEOUT),
            accel: Accel::Tcg,
            load_module: true,
            env: Vec::new(),
            cwd: None,
            echo: Echo::Captured,
            kernel_args: std::env::var(KERNEL_ARGS_ENV).ok().into_iter().collect(),
            writable_root: false,
        }
    }

    /// Number of vCPUs (default 2).
    pub fn smp(mut self, n: u32) -> Guest {
        self.smp = n.max(1);
        self
    }

    /// Guest memory in MiB (default 1024).
    pub fn mem_mib(mut self, mib: u32) -> Guest {
        self.mem_mib = mib;
        self
    }

    /// Kill the guest after this long (default 900 s).
    pub fn timeout(mut self, timeout: Duration) -> Guest {
        self.timeout = Some(timeout);
        self
    }

    /// No timeout (interactive shells).
    pub fn no_timeout(mut self) -> Guest {
        self.timeout = None;
        self
    }

    /// TCG (default) or KVM.
    pub fn accel(mut self, accel: Accel) -> Guest {
        self.accel = accel;
        self
    }

    /// Do not insmod adapt.ko before the command (for tests of the runner
    /// itself).
    pub fn without_module(mut self) -> Guest {
        self.load_module = false;
        self
    }

    /// Exports a variable to the command.
    pub fn env(mut self, name: &str, value: &str) -> Guest {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// The directory the command starts in (default: the current one; it
    /// must be visible in the guest: under the workspace or the host root
    /// outside /tmp and /run).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Guest {
        self.cwd = Some(dir.into());
        self
    }

    /// Whether the command's output is printed as it arrives (default yes,
    /// with `print!`, so libtest captures it and shows it for failed tests).
    pub fn echo(mut self, echo: bool) -> Guest {
        self.echo = if echo { Echo::Captured } else { Echo::Off };
        self
    }

    /// Streams the command's output straight to the process's stdout (the
    /// CLI): a closed pipe (`| head`) stops the echo instead of panicking.
    pub fn echo_to_stdout(mut self) -> Guest {
        self.echo = Echo::Stdout;
        self
    }

    /// Makes the guest's root writable: the host's root seen through an
    /// overlay whose upper layer is a tmpfs that lives as long as the guest
    /// (so a test can `dpkg -i`, `depmod`, write /etc). The host's files
    /// are never changed. Needs root on the host: see
    /// [`crate::qemu::RootOverlay`].
    pub fn writable_root(mut self) -> Guest {
        self.writable_root = true;
        self
    }

    /// Appends kernel parameters (also taken from `$ADAPT_VM_KERNEL_ARGS`).
    pub fn kernel_arg(mut self, arg: &str) -> Guest {
        self.kernel_args.push(arg.to_string());
        self
    }

    /// The artifacts this guest boots.
    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    /// Boots, runs `argv` as root, powers off. Errors only when the runner
    /// itself fails (QEMU would not start, a file cannot be written); every
    /// guest-side failure is in the returned [`GuestOutput`].
    pub fn run<S: AsRef<str>>(&self, argv: &[S]) -> Result<GuestOutput> {
        if argv.is_empty() {
            bail!("no command given to run in the guest");
        }
        let argv = argv.iter().map(|a| a.as_ref().to_string()).collect();
        self.boot(Action::Command(argv), false)
    }

    /// Boots with an interactive shell on the terminal (stdin/stdout).
    pub fn shell(&self) -> Result<GuestOutput> {
        self.boot(
            Action::Shell {
                rows_cols: terminal_size(),
            },
            true,
        )
    }

    fn boot(&self, action: Action, interactive: bool) -> Result<GuestOutput> {
        if self.accel == Accel::Kvm {
            check_kvm()?;
        }
        self.artifacts.check()?;
        let cwd = match &self.cwd {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        // A poisoned lock only means another guest's runner panicked.
        let _turn = ONE_GUEST_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());

        if self.writable_root && !is_root() {
            bail!(
                "a writable guest root (--writable-root) needs root on the host: the runner \
                 mounts an overlay of / (tmpfs upper) in a private mount namespace for QEMU"
            );
        }
        let run_dir = rundir::create(&self.artifacts.target_dir.join("vm-runs"))?;
        let root_overlay = if self.writable_root {
            let overlay = RootOverlay {
                upper_mount: run_dir.join("root-upper"),
                merged: run_dir.join("root"),
            };
            overlay.check()?;
            for dir in [&overlay.upper_mount, &overlay.merged] {
                std::fs::create_dir(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            Some(overlay)
        } else {
            None
        };
        let console_log = run_dir.join("console.log");
        let setup_error_file = run_dir.join("setup-error");
        self.write_run_files(&run_dir, &cwd, &setup_error_file, action, interactive)?;

        let config = QemuConfig {
            kernel: self.artifacts.kernel_image.clone(),
            initramfs: self.artifacts.initramfs.clone(),
            smp: self.smp,
            mem_mib: self.mem_mib,
            accel: self.accel,
            console_log: console_log.clone(),
            shares: self.shares(&run_dir, root_overlay.as_ref()),
            extra_kernel_args: self.kernel_args.join(" "),
            root_overlay,
        };
        let qemu_stderr_path = run_dir.join("qemu.stderr");
        let qemu_stderr = std::fs::File::create(&qemu_stderr_path)
            .with_context(|| format!("cannot create {}", qemu_stderr_path.display()))?;
        let mut cmd = config.command();
        std::fs::write(run_dir.join("qemu.cmdline"), format!("{cmd:?}\n"))
            .with_context(|| format!("cannot write into {}", run_dir.display()))?;
        if interactive {
            cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit());
        } else {
            cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        }
        cmd.stderr(Stdio::from(qemu_stderr));

        let start = Instant::now();
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {} (is qemu-system-x86 installed?)",
                crate::qemu::QEMU
            )
        })?;
        let reader = child.stdout.take().map(|out| {
            let mut echo = self.echo;
            std::thread::spawn(move || {
                let mut demux = marker::Demux::default();
                let mut reader = BufReader::new(out);
                let mut line = Vec::new();
                while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    if let Some(text) = demux.feed(&line) {
                        echo = echo.show(&text);
                    }
                    line.clear();
                }
                demux
            })
        });
        let (qemu_status, timed_out) =
            wait_with_deadline(&mut child, self.timeout.map(|t| start + t))?;
        let elapsed = start.elapsed();
        let demux = match reader {
            Some(handle) => handle.join().unwrap_or_default(),
            None => marker::Demux::default(),
        };

        let console_text =
            String::from_utf8_lossy(&std::fs::read(&console_log).unwrap_or_default()).into_owned();
        let status = if interactive {
            console_text
                .lines()
                .find_map(|l| marker::parse(console::message_of(l)).map(|(_, s)| s))
        } else {
            demux.status
        };
        let kernel_problem = console::scan(&console_text).map(|p| p.to_string());
        let setup_error = std::fs::read_to_string(&setup_error_file)
            .ok()
            .map(|s| s.trim().to_string());

        if status.is_none() && kernel_problem.is_none() && !timed_out && !qemu_status.success() {
            let stderr = std::fs::read_to_string(&qemu_stderr_path).unwrap_or_default();
            bail!(
                "QEMU failed ({qemu_status}) without booting the command: {}\n(run directory kept: {})",
                stderr.trim(),
                run_dir.display()
            );
        }
        Ok(GuestOutput {
            status: status.unwrap_or(-1),
            stdout: demux.output,
            kernel_problem,
            console_log,
            timed_out,
            exit_reported: status.is_some(),
            setup_error,
            run_dir,
            elapsed,
        })
    }

    /// The virtfs exports: the host root (or its writable overlay), the run
    /// directory, the workspace and the target directory (when not inside
    /// the workspace).
    fn shares(&self, run_dir: &Path, root_overlay: Option<&RootOverlay>) -> Vec<Share> {
        let mut shares = vec![
            match root_overlay {
                None => Share {
                    tag: "hostroot".into(),
                    path: "/".into(),
                    readonly: true,
                },
                Some(overlay) => Share {
                    tag: "hostroot".into(),
                    path: overlay.merged.clone(),
                    readonly: false,
                },
            },
            Share {
                tag: "adaptrun".into(),
                path: run_dir.to_path_buf(),
                readonly: false,
            },
        ];
        for (tag, path) in self.visible_dirs() {
            shares.push(Share {
                tag: tag.into(),
                path,
                readonly: true,
            });
        }
        shares
    }

    fn visible_dirs(&self) -> Vec<(&'static str, PathBuf)> {
        let ws = self.artifacts.workspace_root.clone();
        let target = self.artifacts.target_dir.clone();
        let mut dirs = vec![("workspace", ws.clone())];
        if !target.starts_with(&ws) {
            dirs.push(("target", target));
        }
        dirs
    }

    fn write_run_files(
        &self,
        run_dir: &Path,
        cwd: &Path,
        setup_error_file: &Path,
        action: Action,
        interactive: bool,
    ) -> Result<()> {
        let write = |name: &str, text: String| {
            let path = run_dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
        };
        for path in [
            run_dir,
            cwd,
            &self.artifacts.workspace_root,
            &self.artifacts.target_dir,
        ] {
            let text = path.to_string_lossy();
            if text.contains('\n') || !path.is_absolute() {
                bail!("{text:?} cannot be passed to the guest: it must be absolute and contain no newline");
            }
        }
        write(
            "mode",
            if interactive {
                "shell\n".into()
            } else {
                "exec\n".into()
            },
        )?;
        write("rundir", format!("{}\n", run_dir.display()))?;
        write(
            "root-access",
            if self.writable_root { "rw\n" } else { "ro\n" }.into(),
        )?;
        let mounts: String = self
            .visible_dirs()
            .iter()
            .map(|(tag, path)| format!("{tag} ro {}\n", path.display()))
            .collect();
        write("mounts", mounts)?;

        let a = &self.artifacts;
        // The release build first: guests run (and benchmark) what users
        // run; the dev-profile directory after it for the other programs.
        let path = format!(
            "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            a.bin_dir.display(),
            a.debug_bin_dir.display()
        );
        let term = if interactive {
            std::env::var("TERM").unwrap_or_else(|_| "vt100".into())
        } else {
            "dumb".into()
        };
        let mut env = vec![
            (
                "ADAPT_KO".to_string(),
                a.adapt_ko.to_string_lossy().into_owned(),
            ),
            (
                "ADAPT_WARN_KO".to_string(),
                a.warn_ko.to_string_lossy().into_owned(),
            ),
            (
                "ADAPT_RUN_DIR".to_string(),
                run_dir.to_string_lossy().into_owned(),
            ),
            ("PATH".to_string(), path),
            ("HOME".to_string(), "/tmp".to_string()),
            ("TERM".to_string(), term),
        ];
        for (name, value) in &self.env {
            if !valid_env_name(name) {
                bail!("{name:?} is not a valid environment variable name");
            }
            env.push((name.clone(), value.clone()));
        }
        let stage2 = Stage2 {
            env,
            cwd: cwd.to_path_buf(),
            insmod: self.load_module.then(|| a.adapt_ko.clone()),
            setup_error_file: setup_error_file.to_path_buf(),
            action,
        };
        write("stage2.sh", stage2.script())
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Waits for QEMU, killing it at the deadline. Returns its status and
/// whether it was killed.
fn wait_with_deadline(
    child: &mut Child,
    deadline: Option<Instant>,
) -> Result<(std::process::ExitStatus, bool)> {
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for QEMU")? {
            return Ok((status, false));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let status = child.wait().context("cannot wait for the killed QEMU")?;
            return Ok((status, true));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The terminal's rows and columns, when stdin is a terminal.
fn terminal_size() -> Option<(u16, u16)> {
    let out = std::process::Command::new("stty")
        .arg("size")
        .stdin(Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

impl GuestOutput {
    /// Why the run failed regardless of the command's status, if it did.
    /// The order is the runner's: a kernel problem beats everything.
    pub fn failure(&self) -> Option<String> {
        if let Some(problem) = &self.kernel_problem {
            let mut msg = format!("kernel problem in the console log: {problem}");
            if self.timed_out {
                msg.push_str("\n(the guest also hit its timeout and was killed)");
            }
            return Some(msg);
        }
        if self.timed_out {
            return Some(format!(
                "the guest did not finish within its timeout and was killed after {}",
                progress::human(self.elapsed)
            ));
        }
        if let Some(setup) = &self.setup_error {
            return Some(format!("the command did not run: {setup}"));
        }
        if !self.exit_reported {
            return Some(
                "the guest ended without reporting the command's exit status (did it crash?)"
                    .to_string(),
            );
        }
        None
    }

    /// The exit status `cargo vm exec` uses: the command's, or one of
    /// [`exit_code`]'s when the run failed otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.kernel_problem.is_some() {
            exit_code::KERNEL_PROBLEM
        } else if self.timed_out {
            exit_code::TIMEOUT
        } else if self.setup_error.is_some() || !self.exit_reported {
            exit_code::NO_EXIT_STATUS
        } else {
            // Statuses come from a shell: 0..=255.
            u8::try_from(self.status).unwrap_or(exit_code::NO_EXIT_STATUS)
        }
    }

    /// The value of the last `name=value` line the command printed.
    pub fn value(&self, name: &str) -> Option<&str> {
        let key = format!("{name}=");
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&key))
            .next_back()
            .map(str::trim)
    }

    /// The text the command printed between a `--- BEGIN name ---` line and
    /// the next `--- END name ---` line (the first such section), trimmed.
    pub fn section(&self, name: &str) -> Option<&str> {
        let begin = format!("--- BEGIN {name} ---");
        let end = format!("--- END {name} ---");
        let start = self.stdout.find(&begin)? + begin.len();
        let stop = self.stdout[start..].find(&end)? + start;
        Some(self.stdout[start..stop].trim())
    }

    /// Whether the command exited 0 and nothing else went wrong.
    pub fn success(&self) -> bool {
        self.failure().is_none() && self.status == 0
    }

    /// Fails with [`GuestOutput::report`] unless [`GuestOutput::success`].
    pub fn check(self) -> Result<GuestOutput> {
        if self.success() {
            Ok(self)
        } else {
            bail!("{}", self.report())
        }
    }

    /// A human summary for failure messages: status, what went wrong, the
    /// end of the output and of the console log, where the logs are.
    pub fn report(&self) -> String {
        let mut r = String::new();
        match self.failure() {
            Some(failure) => r.push_str(&failure),
            None => r.push_str(&format!("the command exited with status {}", self.status)),
        }
        let tail = |text: &str, n: usize| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        r.push_str(&format!(
            "\n--- command output (last lines) ---\n{}",
            tail(&self.stdout, 20)
        ));
        r.push_str(&format!(
            "\n--- console log (last lines) ---\n{}",
            progress::tail_of(&self.console_log, 20)
        ));
        r.push_str(&format!(
            "\n--- console log: {}\n--- run directory: {}",
            self.console_log.display(),
            self.run_dir.display()
        ));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(stdout: &str) -> GuestOutput {
        GuestOutput {
            status: 0,
            stdout: stdout.to_owned(),
            kernel_problem: None,
            console_log: PathBuf::from("/nonexistent/console.log"),
            timed_out: false,
            exit_reported: true,
            setup_error: None,
            run_dir: PathBuf::from("/nonexistent"),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn value_is_the_last_assignment_trimmed() {
        let out = output("a=1\nb=2\na= 3 \nab=4\n");
        assert_eq!(out.value("a"), Some("3"));
        assert_eq!(out.value("ab"), Some("4"));
        assert_eq!(out.value("c"), None);
    }

    #[test]
    fn section_is_the_first_one_between_its_markers_trimmed() {
        let out = output(
            "x\n--- BEGIN doc ---\n{\"a\": 1}\n--- END doc ---\n\
             --- BEGIN doc ---\nsecond\n--- END doc ---\n--- BEGIN open ---\nno end\n",
        );
        assert_eq!(out.section("doc"), Some("{\"a\": 1}"));
        assert_eq!(out.section("open"), None);
        assert_eq!(out.section("missing"), None);
    }
}
