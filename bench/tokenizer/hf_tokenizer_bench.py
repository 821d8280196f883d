#!/usr/bin/env python3
"""HF `tokenizers` (Rust) single-threaded encode throughput on the corpus written by tokenizer_bench.

    tokenizer_bench --write_corpus /tmp/corpus.json
    python3 bench/tokenizer/hf_tokenizer_bench.py --corpus /tmp/corpus.json \
        --tokenizer tests/fixtures/tiny-qwen2-chat/tokenizer.json

The corpus file is the JSON list of lines tokenizer_bench encodes one by one, so the ids-fnv
column must match the C++ table: same input, same tokens.
"""
import argparse
import json
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenizers import Tokenizer  # noqa: E402


def fnv(ids, h):
    for i in ids:
        h ^= i & 0xFFFFFFFF
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokenizer", default="tests/fixtures/tiny-qwen2-chat/tokenizer.json")
    ap.add_argument("--passes", type=int, default=3)
    a = ap.parse_args()
    tok = Tokenizer.from_file(a.tokenizer)
    with open(a.corpus, encoding="utf-8") as f:
        lines = json.load(f)
    text = "".join(lines)
    nbytes = len(text.encode("utf-8"))
    rows = []
    for p in range(a.passes):
        t = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        rows.append(("whole, cold cache" if p == 0 else "whole, warm cache", time.perf_counter() - t, ids))
    for _ in range(a.passes):
        t = time.perf_counter()
        encs = [tok.encode(line, add_special_tokens=False) for line in lines]
        secs = time.perf_counter() - t  # hashing stays outside the timed part
        n, h = 0, 14695981039346656037
        for e in encs:
            n += len(e.ids)
            h = fnv(e.ids, h)
        rows.append(("per line", secs, (n, h)))
    print(f"HF tokenizers: {nbytes} bytes, {len(lines)} lines, 1 thread")
    print(f"{'mode':<20} {'seconds':>10} {'tokens':>12} {'MB/s':>10} {'tokens/s':>12}  ids-fnv")
    for mode, secs, ids in rows:
        n, h = ids if isinstance(ids, tuple) else (len(ids), fnv(ids, 14695981039346656037))
        print(f"{mode:<20} {secs:10.3f} {n:12d} {nbytes / secs / 1e6:10.2f} {n / secs:12.0f}  {h:016x}")


if __name__ == "__main__":
    main()
