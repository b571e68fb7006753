"""A real program for adapt's BLAS tests and demo: an unmodified python3
with numpy whose time goes to the reference BLAS (netlib libblas.so.3, as
Debian's libblas3 ships it): float64 and float32 matrix products
(dgemm_/sgemm_), a.T @ a (dsyrk_) and matrix-vector products (dgemv_).

Every result is compared byte for byte with the one computed at start,
before anything could have been injected, and the program exits non-zero
on any difference.

usage: python3 numpy_blas.py SECONDS [N [KINDS]]
  N      matrix size (default 96)
  KINDS  comma-separated subset of dgemm,sgemm,dsyrk,dgemv (default all)
prints the BLAS library it runs ("blas=PATH"), "ready" once running, a
throughput line per second ("T.Ts  R products/s  checked=C wrong=W"), and
at the end (after SECONDS, or on SIGTERM) "checked=N wrong=M".
"""
import signal
import sys
import time

import numpy as np

stop = False


def on_term(signum, frame):
    global stop
    stop = True


def blas_library():
    """The libblas.so.3 this process mapped (which one numpy really calls)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            if "libblas.so" in line:
                return line.split()[-1]
    return "none"


def main():
    seconds = float(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 96
    kinds = (sys.argv[3] if len(sys.argv) > 3 else "dgemm,sgemm,dsyrk,dgemv").split(",")
    rng = np.random.default_rng(12345)
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    # Shapes that are not multiples of any vector width, and a strided view.
    c = rng.standard_normal((n + 3, n - 5))
    d = rng.standard_normal((n - 5, n + 7))
    v = rng.standard_normal(n)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    work = {
        "dgemm": lambda: [a @ b, c @ d, a[::2, :] @ b],
        "sgemm": lambda: [a32 @ b32],
        "dsyrk": lambda: [a.T @ a],
        "dgemv": lambda: [a @ v, a.T @ v],
    }
    work = {k: f for k, f in work.items() if k in kinds}
    reference = {k: [r.tobytes() for r in f()] for k, f in work.items()}
    signal.signal(signal.SIGTERM, on_term)
    print(f"blas={blas_library()}", flush=True)
    print("ready", flush=True)
    checked = wrong = products = 0
    start = last = time.time()
    while time.time() - start < seconds and not stop:
        for k, f in work.items():
            for got, want in zip(f(), reference[k]):
                products += 1
                checked += 1
                if got.tobytes() != want:
                    wrong += 1
                    print(f"WRONG {k}", flush=True)
        now = time.time()
        if now - last >= 1.0:
            print(
                f"{now - start:6.1f}s {products / (now - last):8.2f} products/s checked={checked} wrong={wrong}",
                flush=True,
            )
            products = 0
            last = now
    print(f"checked={checked} wrong={wrong}", flush=True)
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
