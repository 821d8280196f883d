#!/usr/bin/env python3
"""Where a decode step's time goes, kernel by kernel, under PDL and inside the CUDA graph.

Reads the output of a tpserve_bench built with scripts/gpu/timeline/timeline.patch and run with
TPSERVE_PDL_TRACE=1: one line "PDLTRACE <i> <entry ns> <release ns> <grid> <block>" per launch of a kernel
that calls PdlWait() (block 0 stamps %globaltimer when it starts and when its wait is released). A wait is
released when the kernel before it has completed, so consecutive release times are completion times:
kernel q holds the step for release(q+1) - release(q) ("adds"), and release(q) - entry(q) ("early") is
how long its block 0 sat resident before that (the overlap programmatic dependent launch buys; ~0 means
the kernel started only after the one before it ended). Kernels that do not call PdlWait (sampling,
cuBLAS) are not traced: their time lands in the "adds" of the traced kernel before them.

Steps are cut at the lm_head GEMV (the largest grid, once a step); the decode steps are the most common
step length. usage: step_timeline.py BENCH_LOG [--skip N] [--labels 1152=qkv,...]
"""
import argparse
import collections
import statistics


def read(path):
    recs = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("PDLTRACE "):
                _, i, entry, release, grid, block = line.split()[:6]
                recs.append((int(i), int(entry), int(release), int(grid), int(block)))
    recs.sort()
    return recs


def steps_of(recs, end_grid=None):
    """Index ranges [a, b] of records from just after one lm_head to the next lm_head (inclusive). The
    lm_head is the largest grid that recurs with a step's worth of kernels (20 or more) in between
    (prefill launches larger grids a few times), or end_grid."""
    counts = collections.Counter(r[3] for r in recs)
    for top in ([end_grid] if end_grid else sorted(counts, reverse=True)):
        ends = [k for k, r in enumerate(recs) if r[3] == top]
        spans = [(ends[j - 1] + 1, ends[j]) for j in range(1, len(ends))]
        if len(spans) < 10:
            continue
        length = collections.Counter(b - a + 1 for a, b in spans).most_common(1)[0][0]
        if length >= 20:
            return [(a, b) for a, b in spans if b - a + 1 == length], length
    raise SystemExit("no recurring step found (pass --end-grid)")


def period_of(grids):
    """Smallest layer period: the grid sequence of the middle of a step repeats with it."""
    n = len(grids)
    for p in range(2, n // 3):
        mid = range(n // 4, n - n // 4 - p)
        if all(grids[k] == grids[k + p] for k in mid):
            return p
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--skip", type=int, default=5, help="decode steps left out at the start")
    ap.add_argument("--labels", default="", help="grid=name pairs, comma-separated")
    ap.add_argument("--end-grid", type=int, default=None, help="the grid of a step's last traced kernel")
    a = ap.parse_args()
    labels = dict(kv.split("=") for kv in a.labels.split(",") if kv)
    recs = read(a.log)
    if not recs:
        raise SystemExit("no PDLTRACE lines (bench built without the patch, or TPSERVE_PDL_TRACE unset?)")
    steps, length = steps_of(recs, a.end_grid)
    steps = [s for s in steps[a.skip:] if s[1] + 1 < len(recs)]
    if not steps:
        raise SystemExit(f"{len(recs)} records but no complete decode step after skipping {a.skip}")
    adds = [[] for _ in range(length)]
    early = [[] for _ in range(length)]
    totals = []
    for s0, s1 in steps:
        rel = [recs[k][2] for k in range(s0, s1 + 2)]  # + the next step's first release
        for p in range(length):
            adds[p].append((rel[p + 1] - rel[p]) / 1e3)
            early[p].append((recs[s0 + p][2] - recs[s0 + p][1]) / 1e3)
        totals.append((rel[-1] - rel[0]) / 1e3)
    grids = [recs[steps[0][0] + p][3] for p in range(length)]
    name = lambda g: labels.get(str(g), f"grid {g}")
    mean = statistics.fmean
    print(f"{len(recs)} records; {len(steps)} decode steps of {length} traced kernels; "
          f"step {mean(totals):.1f} us (median {statistics.median(totals):.1f})")
    period = period_of(grids)
    if period:
        first = next(k for k in range(length) if all(grids[k + j] == grids[k + period + j] for j in range(period)))
        layers = [first + period * j for j in range(1, (length - first) // period - 1)]
        print(f"\nlayer period {period} kernels, starting at {first}; mean over {len(layers)} middle layers, us:")
        print(f"{'pos':>3} {'kernel':<16} {'adds':>8} {'early':>8}")
        layer_total = 0.0
        for j in range(period):
            ad = mean(mean(adds[l + j]) for l in layers)
            ea = mean(mean(early[l + j]) for l in layers)
            layer_total += ad
            print(f"{j:>3} {name(grids[first + j]):<16} {ad:>8.2f} {ea:>8.2f}")
        print(f"    {'a layer':<16} {layer_total:>8.2f}")
    print("\nper step, by kernel (us):")
    by = collections.defaultdict(lambda: [0, 0.0])
    for p in range(length):
        by[grids[p]][0] += 1
        by[grids[p]][1] += mean(adds[p])
    for g, (count, total) in sorted(by.items(), key=lambda kv: -kv[1][1]):
        print(f"  {name(g):<16} x{count:<4} {total:>9.1f}   ({total / count:.2f} each)")
    print("\nfirst and last kernels of a step (position, kernel, adds, early):")
    for p in list(range(min(4, length))) + list(range(max(4, length - 4), length)):
        print(f"  {p:>4} {name(grids[p]):<16} {mean(adds[p]):>8.2f} {mean(early[p]):>8.2f}")


if __name__ == "__main__":
    main()
