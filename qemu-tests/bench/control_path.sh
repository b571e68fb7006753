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
# histograms, and whether the stress program saw a wrong crc32. Then, for
# the first build only: CYCLES `auto --once` rounds beside 1 and 8 busy
# threads, from the command's start to its "injected" decision (the
# decision's own timestamp), with ADAPT_NO_MEASURE=1 (TCG's measurement
# often finds nothing faster; the verdict after injection still judges)
# and a WINDOW profile window (default 1s); and the issue's check: forced
# `inject --no-measure` / `revert` cycles beside an independent 8-thread
# checking adapt-crc-stress for its whole CHECK-second run (default 90),
# the cycles completed and its wrong-result count. Times are `date +%s%N`
# around each command, as a user would measure them.
#   control_path.sh [CYCLES [BUILDS [WINDOW [CHECK]]]]
set -u
cycles=${1:-20}
builds=${2:-release debug}
window=${3:-1s}
check=${4:-90}
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
# ("  NAME  X ms", "  (module: threads held X ms)") to $tmp/phases.$1,
# one line per name: a phase that recurs in one command (auto's counting
# windows: upload, inject, window, revert per window) is summed.
phases() {
    awk 'function add(k, x) { if (!(k in t)) order[++n] = k; t[k] += x }
         /^  \(module: / { sub(/^  \(module: /, ""); sub(/ ms\)$/, "");
                           x = $NF; $NF = ""; sub(/ $/, ""); gsub(/ /, "_"); add("module:" $0, x); next }
         /^  [a-z]+ +[0-9.]+ ms$/ { add($1, $2) }
         END { for (i = 1; i <= n; i++) printf "%s %.3f\n", order[i], t[order[i]] }' \
        "$tmp/last.err" >>"$tmp/phases.$1"
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

# Starts adapt-crc-stress with arguments "$@" as $spid and waits for its
# "ready" line.
start_stress() {
    "$stress" "$@" >"$tmp/stress.out" 2>&1 &
    spid=$!
    for _ in $(seq 100); do
        grep -q '^ready' "$tmp/stress.out" 2>/dev/null && break
        sleep 0.1
    done
}

# Stops it; its exit status in $src.
stop_stress() {
    kill -TERM "$spid" 2>/dev/null
    wait "$spid"
    src=$?
}

first=$(echo $bins | cut -d' ' -f1)

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
    # What the three read: system calls, and the files they open besides
    # the dynamic loader's (first build, when the guest has strace).
    if [ "$bin" = "$first" ] && command -v strace >/dev/null 2>&1; then
        for cmd in "--version" "status" "list"; do
            strace -f -o "$tmp/strace" "$ctl" $cmd >/dev/null 2>&1
            calls=$(grep -vc -e '+++ exited' -e '--- SIG' "$tmp/strace")
            files=$(sed -n 's/.*\(open\|openat\|execve\)(\(AT_FDCWD, \)\{0,1\}"\([^"]*\)".*/\3/p' "$tmp/strace" |
                grep -v -e '^/etc/ld.so' -e '/lib[a-z_0-9-]*\.so' -e "^$ctl\$" | tr '\n' ' ')
            printf '%-10s %s system calls; opens: %s\n' "$cmd" "$calls" "${files:-nothing}"
        done
    fi
    for threads in 1 8; do
        start_stress --threads "$threads" --max-len 256
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
        stop_stress
        echo "$threads busy thread(s), $cycles cycles, $failed failed:"
        echo "  inject --no-measure  $(summary "$tmp/inject")"
        echo "  revert               $(summary "$tmp/revert")"
        echo "  inject phases, median ms: $(phase_medians inject)"
        echo "  revert phases, median ms: $(phase_medians revert)"
        echo "  inject rendezvous attempts  $(attempts "$tmp/inject.json")"
        echo "  revert rendezvous attempts  $(attempts "$tmp/revert.json")"
        echo "  stress: $(tail -1 "$tmp/stress.out") (exit $src)"
    done
    [ "$bin" = "$first" ] || continue

    # auto --once: start to "injected", beside 1 and 8 busy threads.
    for threads in 1 8; do
        start_stress --threads "$threads" --max-len 256
        for f in auto phases.auto; do : >"$tmp/$f"; done
        failed=0
        for _ in $(seq "$cycles"); do
            s=$(date +%s%N)
            ADAPT_NO_MEASURE=1 "$ctl" auto --pid "$spid" --once --window "$window" --json --timings \
                >"$tmp/last" 2>"$tmp/last.err"
            injected=$(awk -F'"time":' '/"kind":"injected"/ { split($2, a, ","); print a[1]; exit }' "$tmp/last")
            if [ -n "$injected" ]; then
                awk -v s="$s" -v i="$injected" 'BEGIN { printf "%.3f\n", i * 1000 - s / 1e6 }' >>"$tmp/auto"
                phases auto
            else
                failed=$((failed + 1))
                { grep -v '"kind":"opportunity"' "$tmp/last"; cat "$tmp/last.err"; } | sed 's/^/  auto: /' | head -3
            fi
            "$ctl" revert --pid "$spid" --all >/dev/null 2>&1
        done
        stop_stress
        echo "auto --once beside $threads busy thread(s), window $window, ADAPT_NO_MEASURE=1, $cycles rounds, $failed without an injection:"
        echo "  start to injected    $(summary "$tmp/auto")"
        echo "  auto phases, median ms: $(phase_medians auto)"
        echo "  stress: $(tail -1 "$tmp/stress.out") (exit $src)"
    done

    # The issue's check: forced cycles for the whole run of an independent
    # 8-thread checking target.
    start_stress --threads 8 --max-len 4096 --seconds "$check"
    done_cycles=0
    failed=0
    s=$(date +%s)
    while kill -0 "$spid" 2>/dev/null; do
        # No other program per cycle: under TCG each one costs as much as
        # an adaptctl start, and this counts adaptctl's cycles.
        if "$ctl" inject --pid "$spid" --symbol crc32 --no-measure >/dev/null 2>"$tmp/last.err"; then
            if "$ctl" revert --pid "$spid" --all >/dev/null 2>"$tmp/last.err"; then
                done_cycles=$((done_cycles + 1))
            elif kill -0 "$spid" 2>/dev/null; then
                failed=$((failed + 1))
                sed 's/^/  revert failed: /' "$tmp/last.err" | head -2
            fi
        else
            # The target may have ended its run during the command.
            if kill -0 "$spid" 2>/dev/null; then
                failed=$((failed + 1))
                sed 's/^/  inject failed: /' "$tmp/last.err" | head -2
            fi
        fi
    done
    wait "$spid"
    src=$?
    e=$(date +%s)
    echo "check: forced inject/revert beside 8 checking threads for their ${check}-second run:"
    echo "  $done_cycles cycles completed, $failed failed, in $((e - s)) s"
    echo "  stress: $(tail -1 "$tmp/stress.out") (exit $src)"
done
rm -rf "$tmp"
