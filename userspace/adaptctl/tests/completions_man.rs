//! `adaptctl completions SHELL` and `adaptctl man [--out DIR]`: what the
//! Debian package installs, generated from the clap definitions.

mod common;

use common::{adaptctl, stderr, stdout};

#[test]
fn completions_for_bash_zsh_and_fish_name_the_subcommands() {
    for (shell, marker) in [
        ("bash", "_adaptctl()"),
        ("zsh", "#compdef adaptctl"),
        ("fish", "complete -c adaptctl"),
    ] {
        let out = adaptctl(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for sub in ["inject", "revert", "auto", "completions", "man"] {
            assert!(script.contains(sub), "{shell}: {sub} is not completed");
        }
    }
    let out = adaptctl(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn the_bash_completion_is_valid_bash() {
    let out = adaptctl(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("adaptctl");
    std::fs::write(&file, &out.stdout).unwrap();
    match std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
    {
        Ok(check) => assert!(check.status.success(), "{}", stderr(&check)),
        Err(_) => eprintln!("no bash here: syntax not checked"),
    }
}

#[test]
fn man_prints_adaptctl_8() {
    let out = adaptctl(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH adaptctl 8"), "{page}");
    assert!(page.contains("Exit codes"), "the exit codes are documented");
}

#[test]
fn man_out_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man8");
    let out = adaptctl(&["man", "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert!(listed[0].ends_with("/adaptctl.8"), "{listed:?}");
    for name in [
        "adaptctl",
        "adaptctl-status",
        "adaptctl-inject",
        "adaptctl-revert",
        "adaptctl-auto",
        "adaptctl-library",
        "adaptctl-library-load",
        "adaptctl-policy-load",
        "adaptctl-completions",
        "adaptctl-man",
    ] {
        let path = out_dir.join(format!("{name}.8"));
        assert!(
            listed.contains(&path.display().to_string()),
            "{name} not listed"
        );
        let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(page.contains(&format!(".TH {name} 8")), "{name}: {page}");
        assert!(page.contains(".SH NAME"), "{name}");
        assert!(
            page.contains("adaptctl 0.") || page.contains("adaptctl 1."),
            "{name}: source"
        );
    }
    assert!(
        !out_dir.join("adaptctl-help.8").exists(),
        "no page for help"
    );
}
