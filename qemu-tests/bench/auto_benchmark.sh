#!/bin/sh
# Adaptive-loop benchmark (guest side): for each covered function, a python3
# program whose time goes mostly to it (the system libz.so.1) runs; `adaptctl
# auto --once` (with its measurement of the variants) finds it and swaps it.
# Reports the time from the program's start to the injection, the verdict,
# and the program's throughput after / before (its own MB/s report).
#   cargo vm exec -- sh qemu-tests/bench/auto_benchmark.sh
set -e
workloads=$(dirname "$0")/../workloads
mean() { awk '/MB\/s/ { s += $2; n++ } END { if (n) printf "%.1f", s / n; else print 0 }'; }
printf '%-10s %-22s %12s %10s %10s %8s  %s\n' function variant "to inject" "before" "after" ratio verdict
for case in "crc32_z 256 0" "adler32_z 0 256"; do
    set -- $case
    fn=$1
    # zlib_mix.py SECONDS CRC_KIB ADLER_KIB PY_WORK: one function at a time.
    python3 "$workloads/zlib_mix.py" 120 "$2" "$3" 20 > /tmp/w.out &
    start=$(date +%s.%N)
    while ! grep -q ready /tmp/w.out; do sleep 0.05; done
    pid=$(pgrep -n -f zlib_mix.py)
    sleep 6
    lines_before=$(grep -c 'MB/s' /tmp/w.out)
    before=$(tail -n 4 /tmp/w.out | mean)
    adaptctl auto --pid "$pid" --once --window 4s --json > /tmp/auto.jsonl
    injected_at=$(awk -F'"time":' '/"kind":"injected"/ { split($2, a, ","); print a[1]; exit }' /tmp/auto.jsonl)
    variant=$(awk -F'"variant":"' '/"kind":"injected"/ { split($2, a, "\""); print a[1]; exit }' /tmp/auto.jsonl)
    verdict=$(awk -F'"reason":"' '/"kind":"(kept|reverted)"/ { split($2, a, "\""); print a[1]; exit }' /tmp/auto.jsonl)
    sleep 8
    after=$(tail -n 5 /tmp/w.out | mean)
    kill "$pid"; wait || true
    if [ -n "$injected_at" ]; then
        to_inject=$(awk -v s="$start" -v i="$injected_at" 'BEGIN { printf "%.1f s", i - s }')
    else
        to_inject="-"; variant="(none)"; verdict=$(awk -F'"reason":"' '/"kind":"skipped"/ { split($2, a, "\""); print a[1]; exit }' /tmp/auto.jsonl)
    fi
    ratio=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')
    printf '%-10s %-22s %12s %10s %10s %8s  %s\n' "$fn" "$variant" "$to_inject" "$before" "$after" "$ratio" "$verdict"
    adaptctl revert --pid "$pid" --all >/dev/null 2>&1 || true
done
