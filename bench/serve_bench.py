#!/usr/bin/env python3
"""Benchmark a running tpserve (or any OpenAI-compatible server) over HTTP.

Measures, through the real gateway -> router -> workers path:
  * TTFT of one streaming request with a PROMPT-token prompt (token ids, so the
    length is exact), median of --repeat runs;
  * decode tokens/s with B concurrent streaming requests (prompt --decode-prompt
    tokens, --new tokens each, ignore_eos), for each B in --batch.

Standard library only (runs on the GPU machine and here). Prints a table and,
with --out, writes JSON.

  python3 bench/serve_bench.py --url http://127.0.0.1:8000 --model m \
      --ttft-prompt 1024 --batch 1,32 --new 128
"""
import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse


def stream_completion(url, model, prompt_ids, max_tokens, timeout=600):
    """Streams one completion; returns (ttft_s, total_s, n_tokens, token_times)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    body = json.dumps({
        "model": model, "prompt": prompt_ids, "max_tokens": max_tokens, "temperature": 0,
        "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True},
    })
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:500]!r}")
    ttft = None
    times = []
    n = 0
    for raw in resp:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if "error" in chunk:
            raise RuntimeError(f"stream error: {chunk['error']}")
        if chunk.get("usage"):
            n = chunk["usage"]["completion_tokens"]
        if chunk.get("choices"):
            now = time.perf_counter()
            if ttft is None:
                ttft = now - t0
            times.append(now)
    total = time.perf_counter() - t0
    conn.close()
    return ttft, total, n, times


def wait_ready(url, timeout_s):
    u = urllib.parse.urlparse(url)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not healthy")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--model", required=True)
    ap.add_argument("--vocab", type=int, default=150000, help="token ids are drawn below this")
    ap.add_argument("--ttft-prompt", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--decode-prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    wait_ready(a.url, 600)
    rng = random.Random(0)
    ids = lambda n: [rng.randrange(1000, a.vocab) for _ in range(n)]

    # Warm-up (CUDA graphs, allocator, connection paths).
    stream_completion(a.url, a.model, ids(16), 8)

    ttfts = []
    for _ in range(a.repeat):
        # A fresh random prompt each time so the prefix cache cannot help.
        ttft, _, _, _ = stream_completion(a.url, a.model, ids(a.ttft_prompt), 1)
        ttfts.append(ttft)
    res = {"ttft_prompt": a.ttft_prompt, "ttft_ms_median": statistics.median(ttfts) * 1e3,
           "ttft_ms_all": [t * 1e3 for t in ttfts], "decode": []}

    for b in [int(x) for x in a.batch.split(",")]:
        results = [None] * b
        prompts = [ids(a.decode_prompt) for _ in range(b)]

        def run(i):
            results[i] = stream_completion(a.url, a.model, prompts[i], a.new)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(b)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        tokens = sum(r[2] for r in results)
        # Decode rate: tokens after each request's first, over the time from the
        # last first-token to the last token (all requests decoding together).
        first = max(r[3][0] for r in results)
        last = max(r[3][-1] for r in results)
        after_first = sum(sum(1 for t in r[3] if t > first) for r in results)
        itl = [(r[3][-1] - r[3][0]) / max(1, len(r[3]) - 1) for r in results]
        res["decode"].append({
            "batch": b, "new": a.new, "tokens": tokens, "wall_s": wall,
            "throughput_tok_s": tokens / wall,
            "decode_tok_s": after_first / (last - first) if last > first else float("nan"),
            "itl_ms_median": statistics.median(itl) * 1e3,
        })

    print(f"TTFT, {a.ttft_prompt}-token prompt: {res['ttft_ms_median']:.1f} ms (median of {a.repeat})")
    print(f"{'batch':>6} {'decode tok/s':>13} {'per-seq tok/s':>14} {'ITL ms':>8} {'e2e tok/s':>10}")
    for d in res["decode"]:
        print(f"{d['batch']:>6} {d['decode_tok_s']:>13.1f} {d['decode_tok_s'] / d['batch']:>14.1f} "
              f"{d['itl_ms_median']:>8.2f} {d['throughput_tok_s']:>10.1f}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
