"""A real program for adapt's tests and demo: an unmodified python3 whose
time goes to zlib's crc32 and adler32 (the system libz.so.1) and to plain
Python work that no segment covers. It checks every checksum of small
buffers against pure-Python implementations and exits non-zero on any
mismatch.

usage: python3 zlib_mix.py SECONDS [CRC_KIB ADLER_KIB PY_WORK]
prints "ready" once running, a throughput line per second, and at the end
(after SECONDS, or on SIGTERM) "checked=N wrong=M".
"""
import signal
import sys
import time
import zlib

stop = False


def on_term(signum, frame):
    global stop
    stop = True


def crc32_py(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def adler32_py(data, adler=1):
    a, b = adler & 0xFFFF, adler >> 16
    for x in data:
        a = (a + x) % 65521
        b = (b + a) % 65521
    return (b << 16) | a


def busy_python(n):
    """Uncovered work: plain interpreter arithmetic."""
    s = 0
    for i in range(n):
        s = (s * 31 + i) & 0xFFFFFFFF
    return s


def main():
    seconds = float(sys.argv[1])
    crc_kib = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    adler_kib = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    py_work = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    crc_buf = bytes((i * 7 + 3) & 0xFF for i in range(crc_kib * 1024))
    adler_buf = bytes((i * 13 + 5) & 0xFF for i in range(adler_kib * 1024))
    small = [bytes((i * j + 1) & 0xFF for i in range(j)) for j in range(1, 65)]
    checked = wrong = rounds = 0
    done_bytes = 0
    start = last = time.time()
    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    while time.time() - start < seconds and not stop:
        zlib.crc32(crc_buf)
        zlib.adler32(adler_buf)
        busy_python(py_work)
        done_bytes += len(crc_buf) + len(adler_buf)
        # Correctness of whatever implementation is in place right now, on
        # small buffers of every length 1-64 in turn (every 8th round: the
        # pure-Python references are slow).
        rounds += 1
        if rounds % 8 == 0:
            s = small[checked % len(small)]
            if zlib.crc32(s) != crc32_py(s) or zlib.adler32(s) != adler32_py(s):
                wrong += 1
            checked += 1
        now = time.time()
        if now - last >= 1.0:
            print(f"{now - start:6.1f}s {done_bytes / (now - last) / 1e6:8.1f} MB/s", flush=True)
            done_bytes = 0
            last = now
    print(f"checked={checked} wrong={wrong}", flush=True)
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
