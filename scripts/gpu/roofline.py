#!/usr/bin/env python3
"""Batch-1 decode roofline of a tensor-parallel Qwen2 deployment on this machine.

roofline tok/s = 1 / (weight bytes read per token per GPU / copy bandwidth + 2 * layers * all-reduce latency)
Copy bandwidth is measured on GPU 0 (bytes read + written), the all-reduce latency with torch.distributed
(NCCL, one process per GPU, NVLS off) on a hidden-size float32 vector (the message of a decode step), both
eagerly and replayed from a CUDA graph (how tpserve's decode steps run); the roofline uses the graphed one.

    python3 scripts/gpu/roofline.py --config tests/fixtures/shapes/qwen2-72b-instruct/config.json --tp 4
"""
import argparse, json, os, sys, time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

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


def _allreduce(rank, world, n, q):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29517", NCCL_NVLS_ENABLE="0")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    # float32: tpserve all-reduces the row-parallel partial sums in float32.
    x = torch.ones(n, dtype=torch.float32, device="cuda")
    for _ in range(50):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    iters = 500
    t = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    eager = (time.perf_counter() - t) / iters
    # As tpserve's decode runs them: inside a CUDA graph, no host launch cost.
    # Capturing NCCL collectives through torch failed once on the GPU machine
    # (no message); fall back to the eager figure rather than report nothing.
    graphed = None
    try:
        per_graph = 100
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            for _ in range(5):
                dist.all_reduce(x)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=s):
            for _ in range(per_graph):
                dist.all_reduce(x)
        for _ in range(3):
            g.replay()
        torch.cuda.synchronize()
        reps = 20
        t = time.perf_counter()
        for _ in range(reps):
            g.replay()
        torch.cuda.synchronize()
        graphed = (time.perf_counter() - t) / (reps * per_graph)
    except Exception as e:  # noqa: BLE001 - report and go on
        print(f"rank {rank}: graphed all-reduce not measured: {e!r}", flush=True)
    if rank == 0:
        q.put((eager, graphed))
    dist.destroy_process_group()


def allreduce_latency(tp, n):
    """(eager, in-a-CUDA-graph) seconds per all-reduce of n float32 values."""
    if tp == 1:
        return 0.0, 0.0
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    mp.start_processes(_allreduce, args=(tp, n, q), nprocs=tp, start_method="spawn")
    return q.get()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--tp", type=int, required=True)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    wb = weight_bytes_per_gpu(cfg, a.tp)
    bw = copy_bandwidth_tbps() * 1e12
    eager, graphed = allreduce_latency(a.tp, cfg["hidden_size"])
    t_w = wb / bw
    ar = graphed if graphed is not None else eager
    t_tok = t_w + 2 * cfg["num_hidden_layers"] * ar
    res = {"device": torch.cuda.get_device_name(0), "tp": a.tp, "weight_GB_per_gpu": wb / 1e9,
           "copy_TBps": bw / 1e12, "allreduce_us_eager": eager * 1e6,
           "allreduce_us_graphed": graphed * 1e6 if graphed is not None else None, "weights_only_tok_s": 1 / t_w,
           "roofline_ms_per_token": t_tok * 1e3, "roofline_tok_s": 1 / t_tok}
    print(json.dumps(res))
    if a.out:
        json.dump(res, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
