#!/usr/bin/env python3
"""Prints tpserve's one-prompt prefill (tpserve_bench output, its JSON line)
beside HF transformers + SDPA (bench/hf_prefill.py --out JSON), with ratios.

usage: prefill_vs_hf.py TPSERVE_BENCH_OUTPUT HF_PREFILL_JSON
"""
import json
import sys

tp = json.loads([l for l in open(sys.argv[1]) if l.startswith("JSON ")][-1][5:])
hf = json.load(open(sys.argv[2]))
h = {r["tokens"]: r for r in hf["runs"]}
print(f"\n{'tokens':>7} {'tpserve ms':>11} {'HF fwd ms':>10} {'HF gen ms':>10} {'vs fwd':>7} {'vs gen':>7}")
for r in tp["prefill"]:
    x = h.get(r["prompt"])
    if x:
        print(f"{r['prompt']:>7} {r['ms']:>11.1f} {x['forward_ms']:>10.1f} {x['generate_ms']:>10.1f} "
              f"{x['forward_ms'] / r['ms']:>6.2f}x {x['generate_ms'] / r['ms']:>6.2f}x")
