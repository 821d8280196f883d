#!/usr/bin/env python3
"""Writes the config.json of ONE tensor-parallel rank's share of a model, to run on a single GPU: attention
heads, KV heads, the MLP width and the vocabulary divided by --tp (head_dim kept explicitly), the hidden size
and the layer count unchanged. `tpserve_bench --config` on it gives a rank's compute without the
collectives, so a TP=N step can be split into "the per-rank GEMVs and small kernels" (this) and "the
all-reduces" (the TP run minus this) with one GPU -- the question the TP=2 scaling work left open
(docs/performance.md, "Second run, with the custom all-reduce": is the 3.00 ms TP=2 step the half-width
GEMVs or the collectives?).

    python3 scripts/gpu/rank_shape.py tests/fixtures/shapes/qwen2-7b-instruct/config.json --tp 2 --out /tmp/r2
    tpserve_bench --config /tmp/r2/config.json --batch 1,128 --prompt 512 --new 128
"""
import argparse, json, os, sys


def rank_config(cfg, tp):
    heads, kv, inter, vocab = (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"],
                               cfg["vocab_size"])
    bad = [k for k, v in (("num_attention_heads", heads), ("num_key_value_heads", kv)) if v % tp]
    if bad:
        raise ValueError(f"{', '.join(bad)} not divisible by tp {tp}")
    out = dict(cfg)
    out.update(num_attention_heads=heads // tp, num_key_value_heads=kv // tp,
               intermediate_size=-(-inter // tp), vocab_size=-(-vocab // tp),
               head_dim=cfg.get("head_dim", cfg["hidden_size"] // heads))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--tp", type=int, required=True)
    ap.add_argument("--out", required=True, help="folder for config.json")
    a = ap.parse_args()
    if a.tp < 1:
        ap.error("--tp must be >= 1")
    try:
        cfg = rank_config(json.load(open(a.config)), a.tp)
    except ValueError as e:
        sys.exit(f"error: {e}")
    os.makedirs(a.out, exist_ok=True)
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    print(f"{a.out}/config.json: heads {cfg['num_attention_heads']}, kv heads {cfg['num_key_value_heads']}, "
          f"head_dim {cfg['head_dim']}, intermediate {cfg['intermediate_size']}, vocab {cfg['vocab_size']}")


if __name__ == "__main__":
    main()
