#!/usr/bin/env python3
"""Batch-1 decode roofline of a tensor-parallel Qwen2 deployment on this machine.

roofline ms/token = weight bytes read per token per GPU / copy bandwidth + the step's collectives
Copy bandwidth is measured on GPU 0 (bytes read + written, the same measurement as bench/hf_baseline.py).
The collectives term is what bench/cuda:tpserve_collective_bench measured for one decode step (the worker's
NcclCommunicator, the step's all-reduces and all-gather replayed from a CUDA graph, as the decode graphs run
them); pass its "graph us/step" at batch 1 as --collectives-us.

    python3 scripts/gpu/roofline.py --config tests/fixtures/shapes/qwen2-72b-instruct/config.json --tp 4 \
        --collectives-us 1234.5
"""
import argparse, json, os, sys

import torch

# The same copy-bandwidth measurement as the reference baseline, so the
# roofline and bench/hf_baseline.py's copy_TBps agree on one machine.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from hf_baseline import copy_bandwidth_tbps  # noqa: E402


def weight_bytes_per_gpu(cfg, tp, dtype_bytes=2):
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = h // heads
    kv_dim = max(kv // tp, 1) * hd * tp  # KV heads replicate when TP > kv heads
    per_layer = (h * h + 2 * h * kv_dim + h * h + 2 * h * inter + inter * h) / tp
    per_layer += (h + 2 * kv_dim) / tp + 2 * h  # biases, norms
    lm_head = cfg["vocab_size"] * h / tp
    return (layers * per_layer + lm_head + h) * dtype_bytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--tp", type=int, required=True)
    ap.add_argument("--collectives-us", type=float, required=True,
                    help="collective time of one batch-1 decode step (tpserve_collective_bench, graph)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    wb = weight_bytes_per_gpu(cfg, a.tp)
    bw = copy_bandwidth_tbps() * 1e12
    t_w = wb / bw
    t_tok = t_w + a.collectives_us * 1e-6
    res = {"device": torch.cuda.get_device_name(0), "tp": a.tp, "weight_GB_per_gpu": wb / 1e9,
           "copy_TBps": bw / 1e12, "weights_ms_per_token": t_w * 1e3, "collectives_ms_per_token": a.collectives_us / 1e3,
           "weights_only_tok_s": 1 / t_w, "roofline_ms_per_token": t_tok * 1e3, "roofline_tok_s": 1 / t_tok}
    print(json.dumps(res))
    if a.out:
        json.dump(res, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
