#!/bin/sh
# Profiler overhead benchmark (guest side): a CPU-bound workload's
# throughput unprofiled, profiled at 1 kHz and at 10 kHz, interleaved in
# rounds so drifts of the machine hit all three alike. Each run's figure is
# the median of its per-second rates while the profiler was attached (the
# first seconds, while adaptctl starts, are skipped). Prints one line per
# run and the median ratios against the unprofiled runs.
#   cargo vm exec -- sh qemu-tests/bench/profiler_overhead.sh [ROUNDS] [SECONDS]
set -e
rounds=${1:-3}
secs=${2:-12}
skip=4
out=/tmp/overhead.txt
: > "$out"
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
run() {
    mode=$1
    adapt-workload spin --seconds "$secs" > /tmp/w.txt &
    pid=
    while [ -z "$pid" ]; do
        sleep 0.05
        pid=$(awk '/^ready/ { print $2 }' /tmp/w.txt)
    done
    if [ "$mode" != none ]; then
        adaptctl profile --pid "$pid" --freq "$mode" --duration "$((secs + 5))s" --json > /tmp/p.json
    fi
    wait
    rate=$(awk '/^rate/ { print $2 }' /tmp/w.txt | tail -n +"$skip" | head -n "$((secs - skip - 1))" | median)
    echo "$mode $rate" | tee -a "$out"
}
for r in $(seq "$rounds"); do
    for mode in none 1000 10000; do
        run "$mode"
    done
done
none=$(awk '$1 == "none" { print $2 }' "$out" | median)
k1=$(awk '$1 == "1000" { print $2 }' "$out" | median)
k10=$(awk '$1 == "10000" { print $2 }' "$out" | median)
awk -v n="$none" -v a="$k1" -v b="$k10" 'BEGIN {
    printf "median units/s: unprofiled %.1f, 1 kHz %.1f, 10 kHz %.1f\n", n, a, b
    printf "throughput ratio profiled/unprofiled: 1 kHz %.3f (slowdown %.1f%%), 10 kHz %.3f (slowdown %.1f%%)\n", a / n, (1 - a / n) * 100, b / n, (1 - b / n) * 100
}'
