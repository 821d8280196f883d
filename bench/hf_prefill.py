#!/usr/bin/env python3
"""Peer baseline for prefill on the GPU machine: HuggingFace transformers with attn_implementation="sdpa"
(torch's scaled_dot_product_attention), a Qwen2 of real shape with random bf16 weights, one prompt of random
tokens per length. Two timings per length (synchronised wall clock, median of the timed runs after warm-ups):
  forward_ms  model(input_ids, logits_to_keep=1, use_cache=True), the prefill forward generate() runs
              (--reps runs after two warm-ups);
  generate_ms generate(max_new_tokens=1), the same plus generate's own work (2 runs after one warm-up).
Also records which attention kernels SDPA ran (torch profiler, one forward at the first length).

Run it in the same call as tpserve_bench --prefill, so both numbers come from one machine:
    python3 bench/hf_prefill.py --config tests/fixtures/shapes/qwen2-7b-instruct/config.json \
        --lengths 1024,4096,16384,32768 --out $OUT/hf_prefill.json
"""
import argparse, statistics, time

import torch

from hf_baseline import build_model, emit  # bench/, next to this file


def timed(fn, reps, warmups=2):
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def attention_kernels(model, ids):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        with torch.no_grad():
            model(input_ids=ids, logits_to_keep=1, use_cache=True)
        torch.cuda.synchronize()
    names = {e.key for e in prof.key_averages()}
    return sorted(n for n in names if any(s in n.lower() for s in ("flash", "fmha", "attn", "attention", "sdpa")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="a Qwen2 config.json (shape only; weights are random)")
    ap.add_argument("--lengths", default="1024,4096,16384,32768")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    model = build_model(a.config, attn_implementation="sdpa")
    vocab = model.config.vocab_size
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "config": a.config,
           "attn_implementation": model.config._attn_implementation,
           "sdpa_backends": {"flash": torch.backends.cuda.flash_sdp_enabled(),
                             "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
                             "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled()},
           "runs": []}
    try:
        import transformers
        res["transformers"] = transformers.__version__
    except AttributeError:
        pass
    lengths = [int(x) for x in a.lengths.split(",")]
    for i, n in enumerate(lengths):
        ids = torch.randint(0, vocab, (1, n), device="cuda")
        mask = torch.ones_like(ids)
        if i == 0:
            res["attention_kernels"] = attention_kernels(model, ids)
        with torch.no_grad():
            fwd = timed(lambda: model(input_ids=ids, logits_to_keep=1, use_cache=True), a.reps)
            gen = timed(lambda: model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1,
                                               min_new_tokens=1, do_sample=False), 2, warmups=1)
        res["runs"].append({"tokens": n, "forward_ms": fwd, "generate_ms": gen})
        print(f"HF sdpa prefill {n:6d} tokens: forward {fwd:9.1f} ms, generate(1 token) {gen:9.1f} ms", flush=True)
        del ids, mask
        torch.cuda.empty_cache()
    emit(res, a.out)


if __name__ == "__main__":
    main()
