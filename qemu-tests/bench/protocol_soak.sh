#!/bin/sh
# Patch-protocol soak and ioctl fuzz (guest side), outside the default test
# run because they take long under TCG:
#   cargo vm exec --timeout 7200 -- sh qemu-tests/bench/protocol_soak.sh [CYCLES] [FUZZ_CALLS]
# 1. CYCLES (default 10000) inject/revert cycles of zlib's crc32 in a
#    process whose 8 threads call it and check every result: prints the
#    cycles done, wrong results and the longest hold (pause) of the threads.
# 2. FUZZ_CALLS (default 100000) random ioctls from 4 threads, then a
#    kmemleak scan (the runner also fails on any lockdep or WARN report).
set -e
cycles=${1:-10000}
calls=${2:-100000}
export ADAPT_NO_MEASURE=1
adapt-crc-stress --threads 8 > /tmp/soak.out &
pid=$!
while ! grep -q '^ready' /tmp/soak.out; do sleep 0.1; done
adaptctl inject --json --pid $pid --symbol crc32 > /tmp/inj.json
adaptctl revert --pid $pid --all > /dev/null
start=$(date +%s)
adapt-inject-tool cycle /tmp/inj.json "$cycles" > /tmp/cycle.json || true
end=$(date +%s)
kill -TERM $pid
wait $pid && rc=0 || rc=$?
j() { adapt-inject-tool json "$@"; }
echo "soak: cycles=$(j /tmp/cycle.json cycles_done)/$cycles seconds=$((end - start)) workload_exit=$rc"
echo "soak: $(grep '^calls=' /tmp/soak.out)"
echo "soak: inject hold ns: $(j /tmp/cycle.json inject_pause_ns)"
echo "soak: revert hold ns: $(j /tmp/cycle.json revert_pause_ns)"
echo "soak: max attempts=$(j /tmp/cycle.json max_attempts) error=$(j /tmp/cycle.json error)"
echo clear > /sys/kernel/debug/kmemleak 2>/dev/null || true
start=$(date +%s)
adapt-ioctl-fuzz "$calls" 4 | sed 's/^/fuzz: /'
end=$(date +%s)
echo "fuzz: seconds=$((end - start))"
adaptctl revert --all > /dev/null 2>&1 || true
rmmod adapt
sleep 6
echo scan > /sys/kernel/debug/kmemleak 2>/dev/null || true
echo scan > /sys/kernel/debug/kmemleak 2>/dev/null || true
echo "fuzz: kmemleak=$(grep -c 'unreferenced object' /sys/kernel/debug/kmemleak 2>/dev/null || echo n/a)"
