//! `stage2.sh`: what runs inside the chroot into the host root. It sets the
//! environment, changes to the caller's directory, loads adapt.ko and then
//! becomes the command (or an interactive shell).

use std::path::{Path, PathBuf};

/// What stage2 ends with.
#[derive(Debug, Clone)]
pub enum Action {
    /// `exec` this argv.
    Command(Vec<String>),
    /// An interactive shell on the terminal, told the terminal's size.
    Shell { rows_cols: Option<(u16, u16)> },
}

/// Everything stage2.sh needs to know.
#[derive(Debug, Clone)]
pub struct Stage2 {
    /// Exported variables, in order.
    pub env: Vec<(String, String)>,
    /// The directory to `cd` into.
    pub cwd: PathBuf,
    /// A module to `insmod` before the command (adapt.ko), if any.
    pub insmod: Option<PathBuf>,
    /// Where to write why the setup failed (read by the runner).
    pub setup_error_file: PathBuf,
    pub action: Action,
}

/// Shell-quotes one word (`'…'` when needed).
pub fn quote(word: &str) -> String {
    shell_words::quote(word).into_owned()
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

impl Stage2 {
    /// The script text.
    pub fn script(&self) -> String {
        let mut s = String::from("# stage2.sh, written by adapt-qemu-tests for one guest run.\n");
        let err_file = quote_path(&self.setup_error_file);
        s.push_str(&format!(
            "setup_failed() {{ printf '%s\\n' \"$1\" > {err_file}; printf 'adapt-vm: %s\\n' \"$1\" >&2; exit 125; }}\n"
        ));
        for (name, value) in &self.env {
            s.push_str(&format!("export {name}={}\n", quote(value)));
        }
        let cwd = quote_path(&self.cwd);
        s.push_str(&format!(
            "cd {cwd} || setup_failed \"cannot cd to \"{cwd}\" in the guest\"\n"
        ));
        if let Some(module) = &self.insmod {
            let module = quote_path(module);
            s.push_str(&format!(
                "if ! out=$(insmod {module} 2>&1); then setup_failed \"insmod \"{module}\" failed: $out\"; fi\n"
            ));
        }
        match &self.action {
            Action::Command(argv) => {
                let words: Vec<String> = argv.iter().map(|w| quote(w)).collect();
                s.push_str(&format!("exec {}\n", words.join(" ")));
            }
            Action::Shell { rows_cols } => {
                if let Some((rows, cols)) = rows_cols {
                    s.push_str(&format!("stty rows {rows} cols {cols} 2>/dev/null\n"));
                }
                s.push_str(
                    "echo \"adapt-vm: guest shell (exit or Ctrl-D powers the guest off)\"\n",
                );
                s.push_str(
                    "if [ -x /bin/bash ]; then exec /bin/bash -i; else exec /bin/sh -i; fi\n",
                );
            }
        }
        s
    }
}

/// Whether a name can be exported by a POSIX shell.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const AWKWARD: &[&str] = &[
        "plain",
        "two words",
        "",
        "it's",
        "\"double\"",
        "$HOME",
        "`uname`",
        "$(id)",
        "*",
        "back\\slash",
        "new\nline",
        "tab\there",
        "-n",
        "ünïcödé",
        "semi;colon&amp|pipe",
        "'",
        "!bang",
    ];

    fn stage2(dir: &Path, argv: &[&str]) -> Stage2 {
        Stage2 {
            env: vec![
                ("ADAPT_KO".into(), "/path with space/adapt.ko".into()),
                ("X".into(), "it's $X".into()),
            ],
            cwd: dir.to_path_buf(),
            insmod: None,
            setup_error_file: dir.join("setup-error"),
            action: Action::Command(argv.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// Runs the script with the host's sh and returns stdout.
    fn run(script: &str) -> (i32, String) {
        let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
        )
    }

    #[test]
    fn awkward_arguments_arrive_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let mut argv = vec!["printf", "<%s>\\n"];
        argv.extend_from_slice(AWKWARD);
        let (status, out) = run(&stage2(dir.path(), &argv).script());
        assert_eq!(status, 0);
        let expected: String = AWKWARD.iter().map(|a| format!("<{a}>\n")).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn environment_and_directory_are_set() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a dir 'with' quotes");
        std::fs::create_dir(&sub).unwrap();
        let mut s = stage2(
            &sub,
            &[
                "sh",
                "-c",
                "printf '%s|%s|%s' \"$ADAPT_KO\" \"$X\" \"$PWD\"",
            ],
        );
        s.cwd = sub.clone();
        let (status, out) = run(&s.script());
        assert_eq!(status, 0);
        assert_eq!(
            out,
            format!("/path with space/adapt.ko|it's $X|{}", sub.display())
        );
    }

    #[test]
    fn exit_status_passes_through() {
        let dir = tempfile::tempdir().unwrap();
        let (status, _) = run(&stage2(dir.path(), &["sh", "-c", "exit 7"]).script());
        assert_eq!(status, 7);
    }

    #[test]
    fn failed_insmod_is_reported_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = stage2(dir.path(), &["echo", "must not run"]);
        // `false` stands in for insmod: put a failing `insmod` first on PATH.
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("insmod"), "#!/bin/sh\necho \"insmod: ERROR: could not insert module $1: Invalid parameters\" >&2\nexit 1\n").unwrap();
        Command::new("chmod")
            .arg("+x")
            .arg(bin.join("insmod"))
            .status()
            .unwrap();
        s.env
            .push(("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())));
        s.insmod = Some(PathBuf::from("/x/adapt.ko"));
        let (status, out) = run(&s.script());
        assert_eq!(status, 125);
        assert_eq!(out, "");
        let msg = std::fs::read_to_string(dir.path().join("setup-error")).unwrap();
        assert!(
            msg.starts_with("insmod /x/adapt.ko failed: insmod: ERROR: could not insert module"),
            "{msg}"
        );
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("ADAPT_KO"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1x"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
    }
}
