"""initforge vs torch.nn.init on CPU, in one run: fill rates of a 256 MiB float32 tensor and the
per-call overhead on a 1k-element tensor. Usage: python bench.py [--mib 256] [--repeat 5]
(after `pip install ./python`; uses every core torch and initforge see)."""
import argparse
import os
import sys
import time

# Import the installed wheel, not the source package beside this script.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import numpy as np
import torch

import initforge


def best(f, repeat):
    f()  # warm up: page faults, thread pools
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    n = a.mib * 2**20 // 4
    x = torch.empty(n)
    gib = n * 4 / 2**30
    print(f"threads: torch {torch.get_num_threads()}; tensor {a.mib} MiB float32 ({n} elements)")
    copy = best(lambda: x.fill_(0.5), a.repeat)
    print(f"  memory fill (x.fill_)          {gib / copy:7.2f} GiB/s")
    cases = [
        ("normal", lambda: torch.nn.init.normal_(x), "normal(0, 1)"),
        ("uniform", lambda: torch.nn.init.uniform_(x), "uniform(0, 1)"),
        ("trunc_normal", lambda: torch.nn.init.trunc_normal_(x), "truncated_normal(0, 1, -2, 2)"),
    ]
    for name, tf, scheme in cases:
        t_torch = best(tf, a.repeat)
        t_if = best(lambda: initforge.init_(x, scheme, seed=1, key="bench"), a.repeat)
        print(f"  {name:13s} torch {gib / t_torch:6.2f} GiB/s  initforge {gib / t_if:6.2f} GiB/s"
              f"  ratio {t_torch / t_if:6.1f}x")
    # Per-call overhead: the best of `repeat` loops of k calls each, like the fills above. The
    # first loop after the large fills runs while torch's OpenMP workers still spin on the
    # sibling hyperthread, which slows any single-threaded code by up to 2x; the best loop is
    # the steady state a program calling init_ per layer sees.
    small_t = torch.empty(1000)
    small_n = np.empty(1000, np.float32)
    k = 20000

    def per_call(f):
        def loop():
            for _ in range(k):
                f()
        return best(loop, a.repeat) / k

    rows = [("torch 1k, normal", small_t, "normal(0, 1)"),
            ("numpy 1k, normal", small_n, "normal(0, 1)"),
            ("torch 1k, he_uniform", small_t.view(10, 100), "he_uniform")]
    for label, obj, scheme in rows:
        per = per_call(lambda: initforge.init_(obj, scheme, seed=1, key=7))
        print(f"  per call, {label:22s} {per * 1e6:6.2f} us")
    per = per_call(lambda: torch.nn.init.normal_(small_t))
    print(f"  per call, torch.nn.init.normal_ 1k  {per * 1e6:6.2f} us")


if __name__ == "__main__":
    main()
