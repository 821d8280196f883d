#!/usr/bin/env python3
"""Splits an ncu CSV (--page raw, gpu__time_duration.sum and dram bytes) of a
tpserve_bench run into forward steps (each starts at the embedding gather),
keeps the decode steps (those that run the decode attention kernel), and
prints the last one kernel by kernel, then the time per kernel family summed
over the step, against the bench's own ms/step.

usage: decode_profile.py NCU_CSV [BENCH_LOG]
"""
import csv
import re
import sys
from collections import OrderedDict

SCALE = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6}
BYTES = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}


def family(name):
    base = name.replace("<unnamed>::", "").replace("(anonymous namespace)::", "")
    base = re.sub(r"^void ", "", base)
    base = re.sub(r"\(.*", "", base)
    base = re.sub(r"<.*", "", base).split("::")[-1].strip()
    return base or name[:40]


def load(path):
    lines = [l for l in open(path, errors="replace") if l.startswith('"')]
    rows = list(csv.reader(lines))
    head, units, data = rows[0], rows[1], rows[2:]
    col = {h: i for i, h in enumerate(head)}
    t_i = col["gpu__time_duration.sum"]
    rd_i, wr_i = col.get("dram__bytes_read.sum"), col.get("dram__bytes_write.sum")
    out = []
    for r in data:
        if len(r) != len(head):
            continue
        def num(i):
            if i is None or not r[i]:
                return 0.0
            return float(r[i].replace(",", ""))
        us = num(t_i) * SCALE.get(units[t_i], 1.0)
        rd = num(rd_i) * BYTES.get(units[rd_i], 1) if rd_i is not None else 0
        wr = num(wr_i) * BYTES.get(units[wr_i], 1) if wr_i is not None else 0
        out.append((r[col["Kernel Name"]], us, rd + wr))
    return out


def main():
    ks = load(sys.argv[1])
    steps, cur = [], []
    for k in ks:
        if family(k[0]).startswith("EmbeddingKernel") and cur:
            steps.append(cur)
            cur = []
        cur.append(k)
    if cur:
        steps.append(cur)
    decode = [s for s in steps if any("Decode" in family(k[0]) or "decode" in k[0] for k in s)]
    print(f"{len(ks)} kernels, {len(steps)} steps, {len(decode)} decode steps")
    if not decode:
        return
    step = decode[-1]
    total = sum(k[1] for k in step)
    fam = OrderedDict()
    for name, us, b in step:
        f = family(name)
        c, t, bb = fam.get(f, (0, 0.0, 0.0))
        fam[f] = (c + 1, t + us, bb + b)
    print(f"{'kernel family':48s} {'count':>6s} {'sum us':>9s} {'avg us':>8s} {'GB/s':>8s} {'share':>6s}")
    for f, (c, t, b) in sorted(fam.items(), key=lambda x: -x[1][1]):
        print(f"{f[:48]:48s} {c:6d} {t:9.1f} {t / c:8.2f} {b / (t * 1e-6) / 1e9 if t else 0:8.0f} {100 * t / total:5.1f}%")
    print(f"{'sum of kernel times':48s} {len(step):6d} {total:9.1f}")
    if len(sys.argv) > 2:
        m = [re.findall(r"decode batch (\d+)\s+([\d.]+)\s+([\d.]+)", l) for l in open(sys.argv[2])]
        m = [x[0] for x in m if x]
        if m:
            ms = float(m[-1][2])
            print(f"bench ms/step {ms:.3f}: kernels {total / 1e3:.3f} ms, the rest (gaps, host) "
                  f"{ms - total / 1e3:.3f} ms")
    print("first layer, kernel by kernel:")
    seen = 0
    for name, us, b in step[:14]:
        print(f"  {us:8.2f} us {b / 1e6:9.2f} MB  {name[:110]}")


if __name__ == "__main__":
    main()
