# The control path's wall times, in one guest run (issue 17):
#   cargo vm exec -- sh qemu-tests/bench/control_path.sh [CYCLES [PROFILES]]
# For each adaptctl build present (target/release first: what guests run;
# target/debug for comparison; PROFILES, e.g. "release", picks one):
# `--version`, `status`, `list` (median and max of 10 runs, after the same
# for /bin/true), then CYCLES (default 20) `inject --no-measure` / `revert`
# cycles of zlib's crc32 beside adapt-crc-stress with 1 and with 8 busy
# threads: median and max wall time, the rendezvous attempt histogram, and
# whether the stress program saw a wrong crc32. Times are `date +%s%N`
# around each command, as a user would measure them.
set -u
cycles=${1:-20}
profiles=${2:-release debug}
tmp=$(mktemp -d)
bins=""
for profile in $profiles; do
    for dir in $(echo "$PATH" | tr ':' ' '); do
        case "$dir" in
        */target/$profile) [ -x "$dir/adaptctl" ] && bins="$bins $dir" ;;
        esac
    done
done
stress=$(command -v adapt-crc-stress) || {
    echo "adapt-crc-stress not on PATH: run \`cargo vm build\`" >&2
    exit 1
}

# ms figures in file $1 -> "median M ms, max X ms (n=N)"
summary() {
    sort -n "$1" | awk '{v[NR]=$1} END {
        if (NR == 0) { print "no successful runs"; exit }
        m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
        printf "median %.1f ms, max %.1f ms (n=%d)\n", m, v[NR], NR }'
}

# Runs "$@" and appends its wall time in ms to file $out; its stdout goes to
# $tmp/last.
timed() {
    s=$(date +%s%N)
    "$@" >"$tmp/last" 2>"$tmp/last.err"
    rc=$?
    e=$(date +%s%N)
    [ $rc -eq 0 ] && echo "$(( (e - s) / 1000 ))" | awk '{printf "%.3f\n", $1/1000}' >>"$out"
    return $rc
}

# The guest's own cost of starting a program from the same mount.
out="$tmp/true"
: >"$out"
for _ in 1 2 3 4 5 6 7 8 9 10; do timed /bin/true; done
printf '%-10s %s\n' "/bin/true" "$(summary "$out")"

for bin in $bins; do
    ctl="$bin/adaptctl"
    echo "== $ctl"
    for cmd in "--version" "status" "list"; do
        out="$tmp/startup"
        : >"$out"
        for _ in 1 2 3 4 5 6 7 8 9 10; do timed "$ctl" $cmd; done
        printf '%-10s %s\n' "$cmd" "$(summary "$out")"
    done
    for threads in 1 8; do
        "$stress" --threads "$threads" --max-len 256 >"$tmp/stress.out" 2>&1 &
        spid=$!
        for _ in $(seq 100); do
            grep -q '^ready' "$tmp/stress.out" 2>/dev/null && break
            sleep 0.1
        done
        : >"$tmp/inject"
        : >"$tmp/revert"
        : >"$tmp/attempts"
        failed=0
        for _ in $(seq "$cycles"); do
            out="$tmp/inject"
            if timed "$ctl" inject --pid "$spid" --symbol crc32 --no-measure --json; then
                id=$(sed -n 's/^ *"id": \([0-9]*\),*$/\1/p' "$tmp/last" | head -1)
                sed -n 's/^ *"attempts": \([0-9]*\),*$/\1/p' "$tmp/last" | head -1 >>"$tmp/attempts"
                out="$tmp/revert"
                timed "$ctl" revert --id "$id" --json || failed=$((failed + 1))
            else
                failed=$((failed + 1))
                sed 's/^/  inject failed: /' "$tmp/last.err" | head -2
            fi
        done
        kill -TERM "$spid" 2>/dev/null
        wait "$spid"
        src=$?
        echo "$threads busy thread(s), $cycles cycles, $failed failed:"
        echo "  inject --no-measure  $(summary "$tmp/inject")"
        echo "  revert               $(summary "$tmp/revert")"
        echo "  rendezvous attempts  $(sort -n "$tmp/attempts" | uniq -c | awk '{printf "%s×%s ", $2, $1}')"
        echo "  stress: $(tail -1 "$tmp/stress.out") (exit $src)"
    done
done
rm -rf "$tmp"
