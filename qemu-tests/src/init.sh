#!/bin/busybox sh
# /init of adapt's guest initramfs, written by adapt-qemu-tests (initramfs.rs).
#
# Mounts the host's root (virtfs tag hostroot) read-only (or, with
# --writable-root, a writable overlay of it) at /host, fresh
# tmpfs on /tmp and /run, the kernel filesystems, then the workspace, the
# target directory and the run directory at their own paths (listed in the
# run directory's `mounts`), chroots into /host to run `<run dir>/stage2.sh`,
# reports its exit status as `@@adapt-vm-exit=N@@` and powers off.
/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "adapt-vm init: $*"; }

die() {
    say "$*"
    echo "adapt-vm init: $*" >/dev/ttyS1 2>/dev/null
    sync
    reboot -f
    while :; do sleep 1; done
}

mount -t proc proc /proc
hostname adapt-vm
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

p9=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$p9" adaptrun /run-adapt || die "cannot mount the run directory (virtfs tag adaptrun)"
read -r mode </run-adapt/mode || die "the run directory has no mode file"
read -r rundir </run-adapt/rundir || die "the run directory has no rundir file"

# ro, or rw with --writable-root (the runner then exports an overlay of the
# host's root whose upper layer is a tmpfs on the host, gone after the run).
read -r rootaccess </run-adapt/root-access 2>/dev/null || rootaccess=ro
mount -t 9p -o "$p9,$rootaccess,cache=loose" hostroot /host || die "cannot mount the host root (virtfs tag hostroot)"
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || die "cannot mount tmpfs on /tmp"
mount -t tmpfs -o mode=755 tmpfs /host/run || die "cannot mount tmpfs on /run"
mount -t devtmpfs devtmpfs /host/dev || die "cannot mount /dev"
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /host/dev/pts 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
ln -sf /proc/self/fd /host/dev/fd
ln -sf /proc/self/fd/0 /host/dev/stdin
ln -sf /proc/self/fd/1 /host/dev/stdout
ln -sf /proc/self/fd/2 /host/dev/stderr
mount -t proc proc /host/proc || die "cannot mount /proc"
mount -t sysfs sysfs /host/sys || die "cannot mount /sys"
mount -t debugfs debugfs /host/sys/kernel/debug 2>/dev/null

# `<tag> <ro|rw> <absolute path>` per line; the path may contain spaces.
while read -r tag access path; do
    [ -n "$tag" ] || continue
    mkdir -p "/host$path" 2>/dev/null
    # Read-only views (the workspace, its build outputs) keep the guest's
    # page cache (cache=loose): the host does not change them during a run,
    # and without it every page of a program run from there (adaptctl, the
    # probes) is fetched over 9p again at each exec, which made a 27 MB
    # binary take seconds to start under TCG.
    opts="$p9,$access"
    [ "$access" = ro ] && opts="$opts,cache=loose"
    mount -t 9p -o "$opts" "$tag" "/host$path" || die "cannot mount $path (virtfs tag $tag)"
done </run-adapt/mounts
mkdir -p "/host$rundir" 2>/dev/null
mount --bind /run-adapt "/host$rundir" || die "cannot mount the run directory at $rundir"

stage2="$rundir/stage2.sh"
if [ "$mode" = shell ]; then
    setsid -c chroot /host /bin/sh "$stage2" <>/dev/ttyS1 >&0 2>&0
    status=$?
    kill -9 -1 2>/dev/null
    echo "@@adapt-vm-exit=$status@@"
else
    stty -F /dev/ttyS1 115200 raw -echo
    chroot /host /bin/sh "$stage2" </dev/null >/dev/ttyS1 2>&1
    status=$?
    # Whatever the command left running dies now, so the marker below is the
    # last writer of ttyS1 and its close waits until the UART has sent it.
    kill -9 -1 2>/dev/null
    echo "@@adapt-vm-exit=$status@@" >/dev/ttyS1
fi
sync
reboot -f
while :; do sleep 1; done
