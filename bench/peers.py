#!/usr/bin/env python3
"""Fill rates of the init peers (numpy; torch if installed), for bench/compare.sh.

Same sizes as `cargo bench -p init-core --bench fill`: 64 Mi f32 elements (256 MiB), f16/bf16
with the same element count, each next to a plain fill of the same buffer in the same process
(the memory ceiling); then torch.nn.init.orthogonal_ on 1024² and 4096² f32. Medians of
--reps runs after one warm-up (which also faults the pages in). GB/s counts bytes written.

  peers.py [--reps 5] [--threads 1,2] [--no-torch] [--no-ortho-4096]
"""
import argparse
import statistics
import sys
import time

import numpy as np

ELEMS = 64 << 20


def timed(fn, reps):
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def row(case, threads, secs, nbytes, base_gbs):
    gbs = nbytes / secs / 1e9
    ratio = f"{gbs / base_gbs:.3f}" if base_gbs else "–"
    print(f"| {case:<40} | {threads:>7} | {secs * 1e3:>9.1f} | {gbs:>7.2f} | {ratio:>13} |")


def header():
    print("| case                                     | threads |        ms |    GB/s | × memory fill |")
    print("|------------------------------------------|---------|-----------|---------|---------------|")


def numpy_rows(reps):
    a = np.empty(ELEMS, np.float32)
    rng = np.random.default_rng(0)
    base = timed(lambda: a.fill(1.5), reps)
    base_gbs = a.nbytes / base / 1e9
    row("numpy a.fill(1.5) f32", 1, base, a.nbytes, base_gbs)
    bound = 0.1530931

    def uniform_astype():
        a[:] = rng.uniform(-bound, bound, ELEMS).astype(np.float32)

    def random_out():
        rng.random(out=a, dtype=np.float32)
        np.multiply(a, np.float32(2 * bound), out=a)
        np.subtract(a, np.float32(bound), out=a)

    row("numpy uniform(-b,b).astype(f32)", 1, timed(uniform_astype, reps), a.nbytes, base_gbs)
    row("numpy random(out=, f32), scaled", 1, timed(random_out, reps), a.nbytes, base_gbs)
    row("numpy standard_normal(out=, f32)", 1,
        timed(lambda: rng.standard_normal(out=a, dtype=np.float32), reps), a.nbytes, base_gbs)


def torch_rows(torch, reps, threads_list, ortho_4096):
    import torch.nn.init as init

    for threads in threads_list:
        torch.set_num_threads(threads)
        t32 = torch.empty(ELEMS, dtype=torch.float32)
        base = timed(lambda: t32.fill_(1.5), reps)
        base_gbs = t32.numel() * 4 / base / 1e9
        row("torch fill_(1.5) f32", threads, base, t32.numel() * 4, base_gbs)
        for dtype, name in ((torch.float32, "f32"), (torch.float16, "f16"), (torch.bfloat16, "bf16")):
            t = t32 if dtype == torch.float32 else torch.empty(ELEMS, dtype=dtype)
            nbytes = t.numel() * t.element_size()
            row(f"torch uniform_ {name}", threads, timed(lambda: t.uniform_(-0.153, 0.153), reps),
                nbytes, base_gbs)
            row(f"torch normal_ {name}", threads, timed(lambda: t.normal_(0.0, 0.0884), reps),
                nbytes, base_gbs)
        # trunc_normal_ is ~50x slower: fewer reps.
        row("torch trunc_normal_ f32 (±2σ)", threads,
            timed(lambda: init.trunc_normal_(t32, 0.0, 0.0884, -0.1768, 0.1768), max(1, reps // 3)),
            t32.numel() * 4, base_gbs)
        del t32
    print()
    print("| torch orthogonal_ f32 | threads |       ms |")
    print("|-----------------------|---------|----------|")
    sizes = [1024, 4096] if ortho_4096 else [1024]
    for n in sizes:
        w = torch.empty(n, n, dtype=torch.float32)
        for threads in threads_list:
            torch.set_num_threads(threads)
            r = 3 if n >= 4096 else 5
            secs = timed(lambda: init.orthogonal_(w), r)
            print(f"| {f'{n}x{n}':<21} | {threads:>7} | {secs * 1e3:>8.1f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-ortho-4096", action="store_true")
    a = ap.parse_args()
    threads_list = [int(x) for x in a.threads.split(",")]
    print(f"peers: numpy {np.__version__}", end="")
    torch = None
    if not a.no_torch:
        try:
            import torch
            print(f", torch {torch.__version__} (default threads {torch.get_num_threads()})", end="")
        except ImportError:
            print(", torch not installed (bench/compare.sh --torch installs it)", end="")
    print(f"; {ELEMS} elements; median of {a.reps}\n")
    header()
    numpy_rows(a.reps)
    if torch is not None:
        torch_rows(torch, a.reps, threads_list, not a.no_ortho_4096)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
