#!/bin/sh
# The guest side of `cargo vm demo`: a real, unmodified program (python3
# using the system libz.so.1) runs; adapt finds its hot functions, measures
# the library's variants against them on this machine, swaps the winners in
# while it runs, checks that they helped, and then puts everything back.
# Throughput is the program's own report (MB/s of data checksummed). Then
# a numpy program on the reference BLAS gets its dgemm_ replaced by a
# bit-identical vectorised one, and back.
set -e
workloads=$1
log=/tmp/demo-workload.out

# Mean of the program's last N throughput lines.
throughput() {
    tail -n "$1" "$log" | awk '/MB\/s/ { s += $2; n++ } END { if (n) printf "%.1f", s / n; else print "0" }'
}

step() { printf '\n== %s\n' "$*"; }

step "1. A program that spends its time in zlib (python3 + the system libz.so.1)"
python3 "$workloads/zlib_mix.py" 300 64 256 50 > "$log" &
pid=$!
sleep 8
before=$(throughput 5)
echo "pid $pid: $(cat /proc/$pid/cmdline | tr '\0' ' ')"
echo "throughput before: $before MB/s"

step "2. adaptctl profile: where its time goes"
adaptctl profile --pid "$pid" --duration 3s --top 6

step "3. adaptctl auto: find, measure, inject, judge"
adaptctl auto --pid "$pid" --once --window 4s

step "4. The program now"
adaptctl list --pid "$pid"
sleep 8
after=$(throughput 5)
echo "throughput after:  $after MB/s"

step "5. Revert everything and measure again"
adaptctl revert --pid "$pid" --all || true
sleep 8
reverted=$(throughput 5)
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
checked=$(grep -o 'wrong=[0-9]*' "$log" || echo "wrong=?")

step "6. numpy on the reference BLAS: its matrix product replaced live, bit for bit"
nlog=/tmp/demo-numpy.out
# The netlib reference libblas.so.3 (Debian's libblas3), whatever the
# alternatives select; the program prints which one it mapped.
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/blas python3 "$workloads/numpy_blas.py" 120 128 dgemm > "$nlog" &
npid=$!
for _ in $(seq 300); do grep -q '^ready' "$nlog" && break; sleep 0.1; done
grep '^blas=' "$nlog"
products() {
    tail -n "$1" "$nlog" | awk '/products\/s/ { s += $2; n++ } END { if (n) printf "%.1f", s / n; else print "0" }'
}
sleep 6
nbefore=$(products 4)
echo "matrix products before: $nbefore /s"
adaptctl inject --pid "$npid" --symbol dgemm_ --object libblas.so.3 --no-measure
sleep 8
nwith=$(products 4)
echo "matrix products with dgemm_ replaced: $nwith /s"
adaptctl revert --pid "$npid" --all
sleep 6
nreverted=$(products 4)
kill "$npid" 2>/dev/null || true
wait "$npid" 2>/dev/null || true
nchecked=$(grep -o 'checked=[0-9]* wrong=[0-9]*' "$nlog" | tail -1 || echo "wrong=?")

step "Summary (TCG guest: emulated CPU, see BENCHMARKS.md for native figures)"
awk -v b="$before" -v a="$after" -v r="$reverted" -v c="$checked" 'BEGIN {
    printf "  zlib (python3)            %10s\n", "MB/s"
    printf "  %-26s %10.1f\n", "before adapt", b
    printf "  %-26s %10.1f   (%.2fx)\n", "with adapt'"'"'s injections", a, (b > 0 ? a / b : 0)
    printf "  %-26s %10.1f   (%.2fx)\n", "after revert", r, (b > 0 ? r / b : 0)
    printf "  results checked by the program: %s\n", c
}'
awk -v b="$nbefore" -v a="$nwith" -v r="$nreverted" -v c="$nchecked" 'BEGIN {
    printf "  numpy (reference BLAS)    %10s\n", "products/s"
    printf "  %-26s %10.1f\n", "before adapt", b
    printf "  %-26s %10.1f   (%.2fx)\n", "with dgemm_ replaced", a, (b > 0 ? a / b : 0)
    printf "  %-26s %10.1f   (%.2fx)\n", "after revert", r, (b > 0 ? r / b : 0)
    printf "  results compared byte for byte with the first: %s\n", c
}'
