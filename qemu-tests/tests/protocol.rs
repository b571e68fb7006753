//! The patch protocol against hostile targets (`adapt-hostile`): a revert
//! never writes over a site that changed, a segment a signal frame may
//! still return into is never unmapped, stopped targets are refused and
//! never make `rmmod` hang, address-space sharers are refused, a process
//! whose main thread exited stays tracked, an exec race leaves no
//! untracked mapping, and a `/dev/adapt` descriptor passed to an
//! unprivileged process is worth nothing. Each scenario targets a hole the
//! module had before the protocol re-checked everything under the park
//! (blind revert writes, unmapping under a signal frame, waiting on a
//! stopped thread, unparked sharers, forgetting a leader-less process,
//! open-time-only authority).
//! The runner fails any test whose guest kernel logged a WARN, BUG, oops,
//! lockdep or kmemleak report.

mod common;

use adapt_qemu_tests::GuestOutput;
use common::{assert_clean, number, value};

/// Shell helpers on top of the common ones (bash).
///
/// - `hostile NAME MODE ARGS…`: starts adapt-hostile, pid in `$NAME`,
///   output in /tmp/NAME.out, and waits for its `ready` line.
/// - `stop NAME`: SIGTERM, wait, print `NAME_exit=N` and `NAME_summary=…`.
const PRELUDE: &str = r#"
set -e
hostile() {
    local name=$1; shift
    adapt-hostile "$@" > /tmp/$name.out 2>&1 &
    eval "$name=$!"
    wait_line /tmp/$name.out '^ready'
}
stop() {
    local name=$1 pid rc
    eval "pid=\$$name"
    kill -TERM $pid 2>/dev/null || true
    wait $pid && rc=0 || rc=$?
    echo "${name}_exit=$rc"
    echo "${name}_summary=$(grep -E '^calls=' /tmp/$name.out | tail -1)"
    grep -E '^WRONG' /tmp/$name.out | head -3 || true
}
"#;

fn guest(script: &str) -> GuestOutput {
    // Correctness, not speed: inject without measuring first.
    let guest = common::guest(600).env("ADAPT_NO_MEASURE", "1");
    common::run_bash(&guest, &format!("{PRELUDE}\n{script}"))
}

/// `NAME_exit=0` and a summary with calls and no wrong result.
fn correct(out: &GuestOutput, name: &str) {
    assert_eq!(value(out, &format!("{name}_exit")), "0", "{}", out.stdout);
    let summary = value(out, &format!("{name}_summary"));
    assert!(summary.contains(" wrong=0"), "{name}: {summary}");
    let calls: u64 = summary
        .strip_prefix("calls=")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(calls > 0, "{name} made no calls: {summary}");
}

#[test]
fn a_revert_never_writes_over_a_site_that_changed() {
    let out = guest(
        r#"
        # 1. The library is unloaded and a shared, writable file mapping
        #    takes its place: the revert must not write into the file.
        head -c 4096 /dev/zero | tr '\0' '\220' > /tmp/shared.bin
        cp /tmp/shared.bin /tmp/shared.orig
        hostile r remap /tmp/shared.bin
        adaptctl inject --json --pid $r --symbol crc32 > /tmp/inj.json
        id=$(j /tmp/inj.json injection.id)
        kill -USR1 $r
        wait_line /tmp/r.out '^remap'
        grep '^remap' /tmp/r.out
        adaptctl revert --id $id && rc=0 || rc=$?
        echo "remap_revert=$rc"
        adaptctl list --pid $r
        adaptctl list --pid $r --json > /tmp/l.json
        echo "remap_state=$(j /tmp/l.json injections.0.state)"
        cmp -s /tmp/shared.bin /tmp/shared.orig && echo "file_unchanged=yes" || echo "file_unchanged=no"
        adaptctl revert --id $id && rc=0 || rc=$?
        echo "forget=$rc"
        echo "after_forget=$(adaptctl list --pid $r --json > /tmp/l.json; j /tmp/l.json injections.len)"
        stop r

        # 2. A debugger sets a breakpoint on the patched entry: the revert
        #    leaves its byte alone.
        hostile d idle
        adaptctl inject --json --pid $d --symbol crc32 > /tmp/d.json
        id=$(j /tmp/d.json injection.id)
        addr=$(j /tmp/d.json request.target)
        adapt-inject-tool poke $d $addr 0xcc
        adaptctl revert --id $id && rc=0 || rc=$?
        echo "breakpoint_revert=$rc"
        echo "breakpoint_byte=$(peek $d $addr 1)"
        kill -KILL $d; wait $d || true

        # 3. A breakpoint (or uprobe) is there before: the module refuses
        #    to patch over bytes that differ from the file's, even when
        #    userspace expects exactly those bytes.
        hostile u idle
        adaptctl inject --dry-run --json --pid $u --symbol crc32 > /tmp/u.json
        uaddr=$(j /tmp/u.json target.symbol.address)
        expected=$(j /tmp/d.json request.expected)
        adapt-inject-tool poke $u $uaddr 0xcc
        live=$(peek $u $uaddr $(( ${#expected} / 2 )))
        adapt-inject-tool inject /tmp/d.json --pid $u --target $uaddr --expected $live
        adaptctl inject --pid $u --symbol crc32 && rc=0 || rc=$?
        echo "uprobe_inject=$rc"
        kill -KILL $u; wait $u || true
        "#,
    );
    assert_clean(&out);
    let s = &out.stdout;
    assert!(
        s.contains("remapped addr="),
        "the target remapped libz's page: {s}"
    );
    assert_eq!(value(&out, "remap_revert"), "15", "{s}");
    assert!(s.contains("was not restored: its site changed"), "{s}");
    assert!(s.contains("stale: not restored, site changed"), "{s}");
    assert_eq!(value(&out, "remap_state"), "stale", "{s}");
    assert_eq!(
        value(&out, "file_unchanged"),
        "yes",
        "the file on disk was written: {s}"
    );
    assert_eq!(value(&out, "forget"), "0", "{s}");
    assert_eq!(value(&out, "after_forget"), "0", "{s}");
    correct(&out, "r");
    assert_eq!(value(&out, "breakpoint_revert"), "15", "{s}");
    assert_eq!(
        value(&out, "breakpoint_byte"),
        "cc",
        "the breakpoint was overwritten: {s}"
    );
    assert!(s.contains("inject=error kind=site-modified"), "{s}");
    assert_ne!(value(&out, "uprobe_inject"), "0", "{s}");
}

#[test]
fn a_signal_handler_that_interrupted_the_segment_returns_safely_after_reverts() {
    let out = guest(
        r#"
        hostile s sigalrm
        adaptctl inject --json --pid $s --symbol crc32 > /tmp/inj.json
        adaptctl revert --id $(j /tmp/inj.json injection.id) > /dev/null
        adapt-inject-tool cycle /tmp/inj.json 150 > /tmp/cycle.json || true
        echo "cycles=$(j /tmp/cycle.json cycles_done)"
        echo "cycle_error=$(j /tmp/cycle.json error)"
        adaptctl list --pid $s --json > /tmp/l.json
        echo "retired=$(j /tmp/l.json retired)"
        echo "adapt_maps=$(grep -c '\[adapt:' /proc/$s/maps || true)"
        sleep 1
        stop s
        "#,
    );
    assert_clean(&out);
    assert_eq!(value(&out, "cycles"), "150", "{}", out.stdout);
    assert_eq!(value(&out, "cycle_error"), "null", "{}", out.stdout);
    // One retired placement, reused by every cycle.
    assert_eq!(value(&out, "retired"), "1", "{}", out.stdout);
    correct(&out, "s");
}

#[test]
fn a_stopped_target_is_refused_and_rmmod_never_hangs() {
    let out = guest(
        r#"
        hostile a idle
        adaptctl inject --json --pid $a --symbol crc32 > /tmp/plan.json
        adaptctl revert --pid $a --all > /dev/null
        kill -STOP $a
        adaptctl inject --pid $a --symbol crc32 && rc=0 || rc=$?
        echo "stopped_inject=$rc"
        t0=$(date +%s%N)
        adapt-inject-tool inject /tmp/plan.json
        echo "stopped_inject_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
        kill -CONT $a
        adaptctl inject --pid $a --symbol crc32 > /dev/null
        kill -STOP $a
        adaptctl revert --pid $a --all && rc=0 || rc=$?
        echo "stopped_revert=$rc"
        t0=$(date +%s%N)
        rmmod adapt && rc=0 || rc=$?
        echo "rmmod=$rc"
        echo "rmmod_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
        kill -CONT $a
        sleep 0.5
        # Left patched by the unload (it was stopped): still correct.
        stop a
        "#,
    );
    assert_clean(&out);
    let s = &out.stdout;
    assert_eq!(value(&out, "stopped_inject"), "17", "{s}");
    assert!(s.contains("is stopped, traced or frozen (EDEADLK)"), "{s}");
    assert!(s.contains("inject=error kind=thread-held"), "{s}");
    let ms = number(&out, "stopped_inject_ms");
    assert!(ms < 4000, "refusing a stopped target took {ms} ms: {s}");
    assert_eq!(value(&out, "stopped_revert"), "17", "{s}");
    assert_eq!(value(&out, "rmmod"), "0", "{s}");
    let ms = number(&out, "rmmod_ms");
    assert!(ms < 10_000, "rmmod took {ms} ms: {s}");
    correct(&out, "a");
}

#[test]
fn sharers_leader_exit_exec_races_fd_passing_and_eintr() {
    let out = guest(
        r#"
        # A process sharing the address space without being a thread.
        hostile c clone-vm
        adaptctl inject --pid $c --symbol crc32 && rc=0 || rc=$?
        echo "sharer_inject=$rc"
        stop c

        # The main thread called pthread_exit: the process lives on.
        hostile l leader-exit
        sleep 0.3
        adaptctl inject --json --pid $l --symbol crc32 > /tmp/l.json && rc=0 || rc=$?
        echo "leader_inject=$rc"
        echo "leader_listed=$(adaptctl list --pid $l --json > /tmp/ll.json; j /tmp/ll.json injections.len)"
        sleep 0.5
        adaptctl revert --pid $l --all > /dev/null && rc=0 || rc=$?
        echo "leader_revert=$rc"
        stop l

        # The descriptor in an unprivileged process is worth nothing.
        adapt-hostile fd-pass > /tmp/fd.out 2>&1 && rc=0 || rc=$?
        echo "fd_pass=$rc"
        sed 's/^ioctl /ioctl_/; s/ errno=/=/' /tmp/fd.out

        # A thread blocked in epoll_wait sees EINTR when the threads are
        # parked (documented in the README).
        hostile e epoll
        for i in 1 2 3; do
            adaptctl inject --pid $e --symbol crc32 > /dev/null
            adaptctl revert --pid $e --all > /dev/null
        done
        stop e
        echo "eintr=$(grep -o 'eintr=[0-9]*' /tmp/e.out | cut -d= -f2)"

        # Inject while the target execs itself over and over: no mapping
        # is left that the module does not list.
        hostile x exec-loop 25
        end=$(( $(date +%s) + 12 ))
        n=0
        while [ $(date +%s) -lt $end ] && ! grep -q '^last' /tmp/x.out; do
            adaptctl inject --pid $x --symbol crc32 > /dev/null 2>&1 || true
            n=$((n + 1))
            [ $((n % 3)) = 0 ] && adaptctl revert --pid $x --all > /dev/null 2>&1 || true
        done
        wait_line /tmp/x.out '^last'
        sleep 0.3
        echo "exec_injects=$n"
        adaptctl list --pid $x --retired --json > /tmp/xl.json
        mapped=$(grep '\[adapt:' /proc/$x/maps | awk '$2 ~ /x/ {split($1, r, "-"); print r[1]}' | sort)
        # (bash's printf: awk's %x does not handle 64-bit values)
        listed=$(grep -o '"segment_addr": [0-9]*' /tmp/xl.json | cut -d' ' -f2 | while read -r n; do printf '%x\n' "$n"; done | sort -u)
        untracked=0
        for m in $mapped; do echo "$listed" | grep -qx "$m" || untracked=$((untracked + 1)); done
        echo "exec_mapped=$(echo "$mapped" | grep -c . || true)"
        echo "--- exec maps"; grep '\[adapt:' /proc/$x/maps || true; echo "--- exec list"; cat /tmp/xl.json; echo "---"
        echo "exec_untracked=$untracked"
        stop x
        "#,
    );
    assert_clean(&out);
    let s = &out.stdout;
    assert_eq!(value(&out, "sharer_inject"), "15", "{s}");
    assert!(
        s.contains("shares its address space with another process (EUSERS"),
        "{s}"
    );
    correct(&out, "c");
    assert_eq!(value(&out, "leader_inject"), "0", "{s}");
    assert_eq!(value(&out, "leader_listed"), "1", "{s}");
    assert_eq!(value(&out, "leader_revert"), "0", "{s}");
    correct(&out, "l");
    assert_eq!(value(&out, "fd_pass"), "0", "{s}");
    assert_eq!(value(&out, "ioctl_version"), "0", "{s}");
    for cmd in [
        "policy-get",
        "policy-set",
        "library-load",
        "library-list",
        "inject",
        "revert",
        "injection-list",
        "profile-start",
    ] {
        assert_eq!(
            value(&out, &format!("ioctl_{cmd}")),
            libc_eperm(),
            "{cmd}: {s}"
        );
    }
    correct(&out, "e");
    let eintr = number(&out, "eintr");
    assert!(
        eintr >= 1,
        "parking interrupts epoll_wait (documented): {s}"
    );
    assert!(number(&out, "exec_injects") > 0, "{s}");
    assert_eq!(value(&out, "exec_untracked"), "0", "{s}");
    correct(&out, "x");
}

fn libc_eperm() -> &'static str {
    "1"
}
