# The control path's wall times, in one guest run (issue 17):
#   cargo vm exec -- sh qemu-tests/bench/control_path.sh [CYCLES [BUILDS]]
# (`cargo vm bench` runs it as `control_path.sh 20 <the release directory>`.)
# BUILDS are cargo profiles found on PATH as .../target/PROFILE (default
# "release debug": target/release first, what guests run; target/debug for
# comparison) or directories holding an adaptctl. For each: `--version`,
# `status`, `list` (CYCLES runs each, after the same for /bin/true, the
# guest's own cost of starting a program), then CYCLES (default 20)
# `inject --no-measure` / `revert` cycles of zlib's crc32 beside
# adapt-crc-stress with 1 and with 8 busy threads: median and max wall time,
# the median of each phase `--timings` reports, the rendezvous attempt
# histograms, and whether the stress program saw a wrong crc32. Times are
# `date +%s%N` around each command, as a user would measure them.
set -u
cycles=${1:-20}
builds=${2:-release debug}
tmp=$(mktemp -d)
bins=""
for build in $builds; do
    if [ -x "$build/adaptctl" ]; then
        bins="$bins $build"
        continue
    fi
    for dir in $(echo "$PATH" | tr ':' ' '); do
        case "$dir" in
        */target/$build) [ -x "$dir/adaptctl" ] && bins="$bins $dir" ;;
        esac
    done
done
[ -n "$bins" ] || {
    echo "no adaptctl found for: $builds" >&2
    exit 1
}
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
# $tmp/last, its stderr to $tmp/last.err.
timed() {
    s=$(date +%s%N)
    "$@" >"$tmp/last" 2>"$tmp/last.err"
    rc=$?
    e=$(date +%s%N)
    [ $rc -eq 0 ] && echo "$(( (e - s) / 1000 ))" | awk '{printf "%.3f\n", $1/1000}' >>"$out"
    return $rc
}

# Appends the phases of the `--timings` report in $tmp/last.err
# ("  NAME  X ms", "  (module: threads held X ms)") to $tmp/phases.$1.
phases() {
    awk '/^  \(module: / { sub(/^  \(module: /, ""); sub(/ ms\)$/, "");
                           n = $NF; $NF = ""; sub(/ $/, ""); gsub(/ /, "_"); print "module:" $0, n; next }
         /^  [a-z]+ +[0-9.]+ ms$/ { print $1, $2 }' "$tmp/last.err" >>"$tmp/phases.$1"
}

# "NAME M, NAME M, ..." medians (ms) of $tmp/phases.$1, in their order.
phase_medians() {
    [ -s "$tmp/phases.$1" ] || { echo "(no --timings report)"; return; }
    awk '{ if (!($1 in n)) order[++k] = $1; v[$1, ++n[$1]] = $2 }
         END { for (i = 1; i <= k; i++) {
                   p = order[i]; c = n[p]
                   for (a = 1; a <= c; a++) s[a] = v[p, a]
                   for (a = 2; a <= c; a++) { x = s[a]; b = a - 1
                       while (b > 0 && s[b] > x) { s[b + 1] = s[b]; b-- }
                       s[b + 1] = x }
                   m = (c % 2) ? s[(c + 1) / 2] : (s[c / 2] + s[c / 2 + 1]) / 2
                   printf "%s%s %.1f", (i > 1 ? ", " : ""), p, m }
               print "" }' "$tmp/phases.$1"
}

# "N×COUNT ..." of the "attempts" fields in the JSON of file $1.
attempts() {
    sed -n 's/^ *"attempts": \([0-9]*\),*$/\1/p' "$1" | sort -n | uniq -c | awk '{printf "%s×%s ", $2, $1}'
}

# The guest's own cost of starting a program from the same mount.
out="$tmp/true"
: >"$out"
for _ in $(seq "$cycles"); do timed /bin/true; done
printf '%-10s %s\n' "/bin/true" "$(summary "$out")"

for bin in $bins; do
    ctl="$bin/adaptctl"
    echo "== $ctl"
    for cmd in "--version" "status" "list"; do
        out="$tmp/startup"
        : >"$out"
        for _ in $(seq "$cycles"); do timed "$ctl" $cmd; done
        printf '%-10s %s\n' "$cmd" "$(summary "$out")"
    done
    for threads in 1 8; do
        "$stress" --threads "$threads" --max-len 256 >"$tmp/stress.out" 2>&1 &
        spid=$!
        for _ in $(seq 100); do
            grep -q '^ready' "$tmp/stress.out" 2>/dev/null && break
            sleep 0.1
        done
        for f in inject revert inject.json revert.json phases.inject phases.revert; do
            : >"$tmp/$f"
        done
        failed=0
        for _ in $(seq "$cycles"); do
            out="$tmp/inject"
            if timed "$ctl" inject --pid "$spid" --symbol crc32 --no-measure --json --timings; then
                phases inject
                cat "$tmp/last" >>"$tmp/inject.json"
                id=$(sed -n 's/^ *"id": \([0-9]*\),*$/\1/p' "$tmp/last" | head -1)
                out="$tmp/revert"
                if timed "$ctl" revert --id "$id" --json --timings; then
                    phases revert
                    cat "$tmp/last" >>"$tmp/revert.json"
                else
                    failed=$((failed + 1))
                    sed 's/^/  revert failed: /' "$tmp/last.err" | head -2
                fi
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
        echo "  inject phases, median ms: $(phase_medians inject)"
        echo "  revert phases, median ms: $(phase_medians revert)"
        echo "  inject rendezvous attempts  $(attempts "$tmp/inject.json")"
        echo "  revert rendezvous attempts  $(attempts "$tmp/revert.json")"
        echo "  stress: $(tail -1 "$tmp/stress.out") (exit $src)"
    done
done
rm -rf "$tmp"
