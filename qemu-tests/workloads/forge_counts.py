"""A hostile writer for adapt's tests: keeps adding 2^40 to the call
counter of every adapt data area in process PID, through /proc/PID/mem, as
the target itself (or anything with ptrace access to it) could. A data
area is the one-page anonymous read+write mapping right after a mapping
named /[adapt:...] (see adapt-count's data.rs for its layout: the call
counter is its first 64-bit word).

usage: python3 forge_counts.py PID SECONDS
prints "forged=N" (writes made) when done or on SIGTERM.
"""
import signal
import sys
import time

PAGE = 4096
stop = False


def on_term(signum, frame):
    global stop
    stop = True


def data_areas(pid):
    prev = None
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            f = line.split()
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            name = f[5] if len(f) > 5 else ""
            if (prev is not None and "[adapt:" in prev[1] and prev[0] == lo
                    and f[1] == "rw-p" and f[4] == "0" and hi - lo == PAGE and not name):
                yield lo
            prev = (hi, name)


def main():
    pid, seconds = int(sys.argv[1]), float(sys.argv[2])
    signal.signal(signal.SIGTERM, on_term)
    forged = 0
    start = time.time()
    with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
        while not stop and time.time() - start < seconds:
            try:
                for at in list(data_areas(pid)):
                    mem.seek(at)
                    calls = int.from_bytes(mem.read(8), "little")
                    mem.seek(at)
                    mem.write(((calls + (1 << 40)) % (1 << 64)).to_bytes(8, "little"))
                    forged += 1
            except OSError:
                # Unmapped between reading the maps and writing, or the
                # target is gone.
                pass
            time.sleep(0.005)
    print(f"forged={forged}", flush=True)


if __name__ == "__main__":
    main()
