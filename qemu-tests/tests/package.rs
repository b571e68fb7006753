//! The Debian package (`cargo vm package`) installed as a user would: in a
//! guest whose root is writable (`Guest::writable_root`: the host's root
//! through an overlay with a tmpfs upper), with `dpkg -i`, the module
//! loaded by `modprobe adapt` after `depmod`, adaptctl run with no
//! environment, the unit's commands run as systemd would run them; and the
//! packaged module source built by DKMS (`dkms build`) on the host against
//! the guest kernel's build tree.
//!
//! In the guest, adapt.ko is not built by DKMS (a Rust module build under
//! TCG takes far too long): the test puts the adapt.ko `cargo vm build`
//! built from the same source where DKMS installs it,
//! `/lib/modules/$(uname -r)/updates/dkms/`, with the kernel's
//! modules.order/modules.builtin beside it as its kernel package would.
//! `dkms_builds_the_packaged_source_for_the_guest_kernel` checks that DKMS
//! builds that module from the packaged source.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use adapt_qemu_tests::package::{self, Package};
use adapt_qemu_tests::workspace::Workspace;
use adapt_qemu_tests::Artifacts;
use common::{assert_clean, value};

/// One package build per test binary; one heavy step (guest or module
/// build) at a time on these two cores.
fn package() -> &'static Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        let ws = Workspace::locate().expect("workspace");
        package::build(&ws).expect("cargo vm package")
    })
}

static HEAVY: Mutex<()> = Mutex::new(());

/// The lines of the unit's `[Service]` section starting with `key=`, each
/// without systemd's execution prefixes (`-`, `+`, `@`, `!`, `:`).
fn unit_lines(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| l.trim_start_matches(['-', '+', '@', '!', ':']).to_owned())
        .collect()
}

/// The guest script: install, load, run adaptctl bare, then the unit's
/// commands. `@DEB@`, `@KERNEL_DIR@`, `@ENVIRONMENT@`, `@EXEC_START_PRE@`,
/// `@EXEC_START@` and `@EXEC_STOP@` are filled in by the test.
const SCRIPT: &str = r#"set -e
# Nothing of the runner's environment: adaptctl must find everything where
# the package put it.
unset ADAPT_LIBRARY ADAPT_CACHE_DIR ADAPT_DEVICE XDG_CACHE_HOME
export PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive
cd /
# The runner loaded its adapt.ko; load the installed one instead.
rmmod adapt
# No man-db index rebuild of the whole host's pages under emulation.
rm -f /var/lib/man-db/auto-update
echo "--- BEGIN dpkg ---"
dpkg -i @DEB@ 2>&1
echo "--- END dpkg ---"
echo "status=$(dpkg-query -W -f='${Status}' adapt)"
echo "conffiles=$(dpkg-query -W -f='${Conffiles}' adapt | awk '{print $1}' | tr '\n' ' ')"
echo "dkms=$(dkms status adapt 2>&1 | tr '\n' ' ')"

# Where DKMS would have installed the module it built.
kver=$(uname -r)
mkdir -p /lib/modules/$kver/updates/dkms
cp "$ADAPT_KO" /lib/modules/$kver/updates/dkms/adapt.ko
cp @KERNEL_DIR@/modules.order @KERNEL_DIR@/modules.builtin @KERNEL_DIR@/modules.builtin.modinfo /lib/modules/$kver/
depmod -a $kver
modprobe adapt
echo "modprobe=$(grep -c '^adapt ' /proc/modules)"
echo "modinfo=$(modinfo -n adapt)"

echo "adaptctl=$(command -v adaptctl)"
echo "--- BEGIN status ---"
adaptctl status
echo "--- END status ---"
echo "library=$(adaptctl status --json | sed -n 's/.*"library_dir": "\(.*\)".*/\1/p')"
echo "segments=$(ls /usr/lib/adapt/library | tr '\n' ' ')"
echo "man=$(zcat /usr/share/man/man8/adaptctl-inject.8.gz | grep -c '^.TH adaptctl-inject 8')"
echo "man_pages=$(ls /usr/share/man/man8 | grep -c '^adaptctl')"
echo "bash_completion=$(bash -c '. /usr/share/bash-completion/completions/adaptctl && complete -p adaptctl' | grep -c _adaptctl)"
echo "zsh_completion=$(head -1 /usr/share/zsh/vendor-completions/_adaptctl)"
echo "fish_completion=$(grep -c 'complete -c adaptctl' /usr/share/fish/vendor_completions.d/adaptctl.fish)"

# adaptctl auto, bare, on a program whose time goes to libz's crc32.
python3 @WORKLOADS@/zlib_mix.py 600 > /tmp/w.out &
wpid=$!
sleep 3
echo "--- BEGIN once ---"
adaptctl auto --pid $wpid --once --window 3s --no-measure
echo "--- END once ---"
adaptctl revert --pid $wpid --all > /dev/null 2>&1 || true

# The unit, as systemd runs it: its environment, the cache directory it
# asks for (CacheDirectory=adapt, 0700), ExecStartPre, ExecStart as the
# main process, then ExecStop with $MAINPID, waiting for the main process
# as systemd does (TimeoutStopSec).
mkdir -p -m 0700 /var/cache/adapt
export CACHE_DIRECTORY=/var/cache/adapt
@ENVIRONMENT@
# Under TCG the measurement before an injection decides by the emulator's
# speed of each instruction (it often finds nothing faster): the service's
# injection is tested, not that decision.
export ADAPT_NO_MEASURE=1
@EXEC_START_PRE@
@EXEC_START@ > /tmp/service.log 2>&1 &
MAINPID=$!
# Until the service's decision log says it injected (a verdict may revert
# the injection again within one window: the log keeps it).
for _ in $(seq 300); do
    grep -q '^injected' /tmp/service.log && break
    sleep 1
done
injected=$(grep -c '^injected' /tmp/service.log || true)
echo "service_injected=$injected"
@EXEC_STOP@
for _ in $(seq 600); do kill -0 $MAINPID 2>/dev/null || break; sleep 0.1; done
wait $MAINPID && echo "service_exit=0" || echo "service_exit=$?"
echo "--- BEGIN service ---"
cat /tmp/service.log
echo "--- END service ---"
echo "after_stop=$(adaptctl list --pid $wpid --json | grep -c '"segment"' || true)"
echo "cache=$(ls /var/cache/adapt | tr '\n' ' ')"
kill $wpid
wait $wpid || true
tail -1 /tmp/w.out
"#;

#[test]
fn the_installed_package_works_with_no_environment() {
    let pkg = package();
    let _heavy = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let ws = Workspace::locate().unwrap();
    let artifacts = Artifacts::load(&ws).expect("run `cargo vm build` first");
    let unit = std::fs::read_to_string(pkg.root.join(package::UNIT_PATH.trim_start_matches('/')))
        .expect("the staged unit");
    let env: Vec<String> = unit_lines(&unit, "Environment")
        .iter()
        .map(|e| format!("export {e}"))
        .collect();
    let (start, stop) = (
        unit_lines(&unit, "ExecStart"),
        unit_lines(&unit, "ExecStop"),
    );
    assert_eq!((start.len(), stop.len()), (1, 1), "{unit}");
    let script = SCRIPT
        .replace("@DEB@", &pkg.deb.display().to_string())
        .replace("@KERNEL_DIR@", &artifacts.kernel_dir.display().to_string())
        .replace("@ENVIRONMENT@", &env.join("\n"))
        .replace(
            "@EXEC_START_PRE@",
            &unit_lines(&unit, "ExecStartPre").join("\n"),
        )
        .replace("@EXEC_START@", &start[0])
        .replace("@EXEC_STOP@", &stop[0]);
    let guest = common::guest(1800).writable_root();
    let out = common::run_sh(&guest, &script);
    assert_clean(&out);

    assert_eq!(
        value(&out, "status"),
        "install ok installed",
        "{}",
        out.stdout
    );
    assert!(value(&out, "conffiles").contains(package::POLICY_PATH));
    assert!(
        value(&out, "dkms").contains(&format!("adapt/{}", package::VERSION)),
        "DKMS knows the source: {}",
        out.stdout
    );
    assert_eq!(value(&out, "modprobe"), "1");
    assert!(value(&out, "modinfo").ends_with("/updates/dkms/adapt.ko"));
    assert_eq!(value(&out, "adaptctl"), "/usr/bin/adaptctl");
    let status = common::section(&out, "status");
    assert!(status.contains(package::LIBRARY_DIR), "{status}");
    assert!(status.contains("adapt-auto.service unknown"), "{status}");
    assert_eq!(value(&out, "library"), package::LIBRARY_DIR);
    assert!(value(&out, "segments").contains("crc32.seg"));
    assert_eq!(value(&out, "man"), "1");
    assert!(value(&out, "man_pages").parse::<u32>().unwrap() > 10);
    assert_eq!(value(&out, "bash_completion"), "1");
    assert_eq!(value(&out, "zsh_completion"), "#compdef adaptctl");
    assert_ne!(value(&out, "fish_completion"), "0");

    // auto --once found the library by itself and injected libz's crc32.
    let once = common::section(&out, "once");
    assert!(once.contains("crc32"), "{once}");
    assert!(!once.contains("no segment library"), "{once}");

    // The service injected, and stopping it reverted everything it made.
    assert_ne!(value(&out, "service_injected"), "0", "{}", out.stdout);
    assert_eq!(value(&out, "service_exit"), "0", "{}", out.stdout);
    assert_eq!(value(&out, "after_stop"), "0", "{}", out.stdout);
    // (The service skips the measurement here, ADAPT_NO_MEASURE: its
    // cache holds the verifier's results.)
    assert!(
        value(&out, "cache").contains("verified"),
        "the service's cache is in /var/cache/adapt: {}",
        out.stdout
    );
    assert!(out.stdout.contains("wrong=0"), "{}", out.stdout);
}

/// `dkms build` of the packaged source, in a DKMS tree of its own (the
/// host's /var/lib/dkms and /usr/src are not touched), against the cached
/// guest kernel's build tree; then against a tree without CONFIG_RUST.
#[test]
fn dkms_builds_the_packaged_source_for_the_guest_kernel() {
    let pkg = package();
    let _heavy = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let ws = Workspace::locate().unwrap();
    let artifacts = Artifacts::load(&ws).expect("run `cargo vm build` first");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&pkg.deb).arg(&root));
    let source_tree = root.join("usr/src");
    assert!(source_tree
        .join(format!("adapt-{}/dkms.conf", package::VERSION))
        .is_file());
    let dkms_tree = tmp.path().join("dkms");
    std::fs::create_dir(&dkms_tree).unwrap();
    // `dkms ACTION [-k KERNEL --kernelsourcedir DIR]` on our trees.
    let dkms = |action: &str, kernel: Option<(&str, &Path)>| {
        let mut cmd = Command::new("dkms");
        cmd.arg(action)
            .args(["-m", "adapt", "-v", package::VERSION])
            .arg("--sourcetree")
            .arg(&source_tree)
            .arg("--dkmstree")
            .arg(&dkms_tree)
            // As the runner's own module build: cargo's MSRV variable must
            // not reach the kernel's Rust build.
            .env_remove("CARGO_PKG_RUST_VERSION");
        if let Some((release, dir)) = kernel {
            cmd.args(["-k", release]).arg("--kernelsourcedir").arg(dir);
        }
        cmd
    };
    run_ok(&mut dkms("add", None));
    let release =
        std::fs::read_to_string(artifacts.kernel_dir.join("include/config/kernel.release"))
            .unwrap();
    let release = release.trim();
    let built = run(&mut dkms("build", Some((release, &artifacts.kernel_dir))));
    let module = dkms_tree.join(format!(
        "adapt/{}/{release}/x86_64/module/adapt.ko",
        package::VERSION
    ));
    assert!(
        built.status.success() && module.is_file(),
        "dkms build failed:\n{}\n{}",
        text(&built),
        make_log(&dkms_tree)
    );
    let modinfo = run(Command::new("modinfo")
        .args(["-F", "vermagic"])
        .arg(&module));
    assert!(
        String::from_utf8_lossy(&modinfo.stdout).starts_with(&format!("{release} ")),
        "{}",
        text(&modinfo)
    );

    // A kernel tree without Rust: DKMS skips it (exit 77, as its
    // autoinstall expects), and the make line of dkms.conf says why in one
    // line naming the option instead of failing inside Kbuild.
    let norust = tmp.path().join("linux-norust");
    std::fs::create_dir_all(norust.join("include/config")).unwrap();
    for file in [".config", "include/config/auto.conf"] {
        std::fs::write(
            norust.join(file),
            "CONFIG_MODULES=y\n# CONFIG_RUST is not set\n",
        )
        .unwrap();
    }
    let skipped = run(&mut dkms("build", Some(("6.12.0-norust", &norust))));
    assert_eq!(skipped.status.code(), Some(77), "{}", text(&skipped));
    assert!(
        text(&skipped).contains("BUILD_EXCLUSIVE"),
        "{}",
        text(&skipped)
    );
    let src = source_tree.join(format!("adapt-{}", package::VERSION));
    let make = run(Command::new("make")
        .arg("-C")
        .arg(src.join("kmod"))
        .arg(format!("KDIR={}", norust.display()))
        .arg("LLVM=1"));
    assert!(!make.status.success());
    let stderr = String::from_utf8_lossy(&make.stderr);
    let ours: Vec<&str> = stderr.lines().filter(|l| l.starts_with("adapt:")).collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert!(ours[0].contains("CONFIG_RUST=y"), "{stderr}");
    assert!(stderr.lines().count() <= 3, "no wall of errors: {stderr}");
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The end of DKMS's make.log, for failure messages.
fn make_log(dkms_tree: &Path) -> String {
    let log: PathBuf = dkms_tree.join(format!("adapt/{}/build/make.log", package::VERSION));
    adapt_qemu_tests::progress::tail_of(&log, 40)
}

#[test]
fn unit_lines_drop_systemd_prefixes() {
    let unit = "[Service]\nExecStartPre=+/sbin/modprobe adapt\nExecStartPre=-/bin/true\nExecStart=/usr/bin/adaptctl auto --all\nEnvironment=A=b\n";
    assert_eq!(
        unit_lines(unit, "ExecStartPre"),
        ["/sbin/modprobe adapt", "/bin/true"]
    );
    assert_eq!(
        unit_lines(unit, "ExecStart"),
        ["/usr/bin/adaptctl auto --all"]
    );
    assert_eq!(unit_lines(unit, "Environment"), ["A=b"]);
}
