#!/usr/bin/env python3
"""Tensor parallelism and quantized formats against bf16 TP=1 on HF-saved checkpoints (run on the GPU machine).

For each shape, HF builds a Qwen2 (seeded; random or trained, scripts/gpu/checkpoints.py), saves it as
safetensors, and tpserve's CUDA backend (bench/cuda:tpserve_tp_check: one thread per GPU, NCCL) computes
logits at every prompt position and 128-token greedy continuations at each TP size. Reports, for each run
against bf16 at TP=1: logits relative error (max |diff| / max |ref| per position), top-1 agreement, and
identical greedy continuations.

    python3 scripts/gpu/tp_check.py --bin /tmp/tp/bin/tpserve_tp_check --tp 1,2,4 --out $OUT/tp.json

--quantization takes a list of formats, each run at every TP size against bf16 TP=1:
  fp8                 bf16 checkpoint, `--quantization fp8` (tpserve quantizes at load)
  gptq-int8, awq, gptq-int4, gptq-int4-act
                      the checkpoint quantized by the reference quantizer (quant_ref.py, group size 128;
                      -act: GPTQ desc_act with g_idx) and saved with its quantization_config (quant_ckpt.py)
  fp8kv               bf16 weights with an FP8 KV cache (also: --kv-cache-dtype fp8, run last)
Variants run in the order given (bf16 first, the baseline), so the ones that matter most go first under a
--budget-s.
For each format, "HF top-1" is HF transformers on the format's dequantized weights against HF on bf16, at
the same positions: the format's own error, apart from tpserve's. For each greedy continuation that differs,
the first differing token is printed with bf16's (HF) margin between its top-1 and top-2 logits there and
the format's (HF, dequantized) logit error there, so a divergence at a near tie reads as one.
--budget-s stops starting new work once that many seconds have passed, so a device call ends with a table.
"""
import argparse, gc, json, os, shutil, subprocess, time

# The development GPU machines have no NVLink SHARP set-up; tpserve leaves the
# choice to the environment, so a direct run of this script sets it too.
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")

import numpy as np
import torch

import checkpoints  # scripts/gpu/checkpoints.py
import quant_ckpt  # scripts/gpu/quant_ckpt.py

T0 = time.time()
WEIGHT_FORMATS = ["fp8", *quant_ckpt.FORMATS]
# Variants: label -> (tpserve's --quantization, --kv-cache-dtype); the checkpoint is the bf16 one unless the
# label is one of quant_ckpt.FORMATS.
VARIANTS = {"auto": ("auto", "auto"), "fp8": ("fp8", "auto"), "fp8kv": ("auto", "fp8"),
            **{q: ("auto", "auto") for q in quant_ckpt.FORMATS}}


def rel_err(x, ref):
    """max |x - ref| / max |ref| along the last axis."""
    return np.abs(x - ref).max(-1) / np.abs(ref).max(-1)


def run_binary(a, mdir, pfile, out, tp, quant, kv):
    left = None if not a.budget_s else max(a.budget_s - (time.time() - T0), 1)
    t = time.time()
    try:
        r = subprocess.run([a.bin, "--model", mdir, "--prompts", pfile, "--out", out, "--tp", str(tp),
                            "--new", str(a.new), "--quantization", quant, "--kv-cache-dtype", kv],
                           capture_output=True, text=True, timeout=left)
    except subprocess.TimeoutExpired:
        return {"error": "time budget"}
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
        return {"error": r.stderr[-2000:]}
    logits = np.fromfile(os.path.join(out, "logits.f32"), dtype=np.float32)
    logits = logits.reshape(a.prompts, a.len, -1)[:, :, :a.vocab]
    greedy = [list(map(int, l.split())) for l in open(os.path.join(out, "greedy.txt"))]
    return {"logits": logits, "greedy": greedy, "seconds": time.time() - t}


def divergences(model, deq, ids, base, run, vocab):
    """For each continuation of `run` that differs from `base`: the first differing token, bf16 HF's
    top-1 minus top-2 there (absolute and over max |logit|), whether HF's top-1 is tpserve bf16's token,
    and the format's HF logit error there (None without dequantized weights: an FP8 KV cache)."""
    rows, seqs = [], []
    for i, (x, y) in enumerate(zip(run["greedy"], base["greedy"])):
        d = next((j for j, (p, q) in enumerate(zip(x, y)) if p != q), None)
        if d is not None:
            rows.append({"prompt": i, "token": d, "bf16": y[d], "format": x[d]})
            seqs.append(list(map(int, ids[i])) + y[:d])
    if not rows or model is None:
        return rows
    ref = [l[-1].numpy() for l in quant_ckpt.logits(model, seqs, vocab)]
    fmt = None
    if deq is not None:
        with quant_ckpt.swapped(model, deq):
            fmt = [l[-1].numpy() for l in quant_ckpt.logits(model, seqs, vocab)]
    for k, r in enumerate(rows):
        top = np.sort(ref[k])[-2:]
        scale = np.abs(ref[k]).max()
        r.update(margin=float(top[1] - top[0]), margin_rel=float((top[1] - top[0]) / scale),
                 hf_top1_is_bf16=bool(ref[k].argmax() == r["bf16"]),
                 gap_rel=float((ref[k][r["bf16"]] - ref[k][r["format"]]) / scale))
        if fmt is not None:
            r["format_err_rel"] = float(np.abs(fmt[k] - ref[k]).max() / scale)
    return rows


def compare(a, base, r, tp, label, hf, model, deq, ids, task):
    """One row of the report: run `r` against bf16 TP=1."""
    rel = rel_err(r["logits"], base["logits"])
    agree = r["logits"].argmax(-1) == base["logits"].argmax(-1)
    # Agreement where TP=1 is not a near tie (top-1 minus top-2 >= 2% of its largest |logit|).
    top2 = np.sort(base["logits"], axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) / np.abs(base["logits"]).max(-1) >= 0.02
    row = {"tp": tp, "quantization": label, "max_rel_err": float(rel.max()), "median_rel_err": float(np.median(rel)),
           "top1_agreement": float(agree.mean()), "clear_positions": float(clear.mean()),
           "top1_agreement_clear": float(agree[clear].mean()) if clear.any() else None,
           "greedy_identical": sum(1 for x, y in zip(r["greedy"], base["greedy"]) if x == y), "prompts": a.prompts,
           "seconds": round(r["seconds"], 1)}
    row.update(hf or {})
    row["divergences"] = divergences(model if a.hf else None, deq, ids, base, r, a.vocab)
    if task is not None:
        row["on_chain"] = on_chain(task, ids, r["greedy"])
    return row


def on_chain(task, ids, greedy):
    """Share of greedy tokens that are the successor of the token before: the checkpoint's own accuracy."""
    ok = [int(task.succ[p]) == q for s, g in zip(ids, greedy) for p, q in zip([int(s[-1])] + g[:-1], g)]
    return float(np.mean(ok))


class OnHost:
    """Moves the HF model and the dequantized weights to host memory for the block: tpserve sizes its KV cache
    from the GPU's free memory, and at the 7B shape this process's model, training leftovers and dequantized
    copy left it none (H200, 2026-12-01: "0.0 GiB for the KV cache after 8.1 GiB weights")."""

    def __init__(self, model, deq):
        self.model, self.deq = model, deq

    def _move(self, device):
        self.model.to(device)
        for k, v in (self.deq or {}).items():
            self.deq[k] = v.to(device)
        gc.collect()
        torch.cuda.empty_cache()

    def __enter__(self):
        self.device = next(self.model.parameters()).device
        self._move("cpu")
        return self

    def __exit__(self, *exc):
        self._move(self.device)
        return False


def hf_top1(a, model, deq, ids, hf_base):
    """HF on the format's dequantized weights against HF bf16 on the prompts."""
    if not a.hf or deq is None:
        return None
    with quant_ckpt.swapped(model, deq):
        q = np.stack([l.numpy() for l in quant_ckpt.logits(model, [list(map(int, r)) for r in ids], a.vocab)])
    return {"hf_top1": float((q.argmax(-1) == hf_base.argmax(-1)).mean()),
            "hf_max_rel_err": float(rel_err(q, hf_base).max())}


def print_row(s, v):
    head = f"{s['shape']:<22}{s['checkpoint']:>8}{v['tp']:>4} {v['quantization']:<14}"
    if "error" in v:
        print(f"{head} ERROR {v['error'][-300:]}")
        return
    clear = "-" if v["top1_agreement_clear"] is None else f"{v['top1_agreement_clear']:.3f}"
    hf = f"{v['hf_top1']:.3f}" if "hf_top1" in v else "-"
    chain = f"{v['on_chain']:.3f}" if "on_chain" in v else "-"
    print(f"{head}{v['max_rel_err']:>11.4f}{v['median_rel_err']:>9.4f}{v['top1_agreement']:>8.3f}{clear:>8}"
          f"{v['greedy_identical']:>6}/{v['prompts']}{hf:>8}{chain:>7}")
    for d in v["divergences"]:
        line = f"    prompt {d['prompt']}: first difference at generated token {d['token']} ({d['bf16']} -> {d['format']})"
        if "margin" in d:
            line += (f"; bf16 top1-top2 {d['margin']:.3f} ({d['margin_rel']:.4f} of max|logit|), bf16 gap to the "
                     f"format's token {d['gap_rel']:.4f}, HF top-1 = bf16's: {d['hf_top1_is_bf16']}")
        if "format_err_rel" in d:
            line += f"; format's HF logit error there {d['format_err_rel']:.4f}"
        print(line)


def header():
    print(f"{'shape':<22}{'ckpt':>8}{'TP':>4} {'format':<14}{'max rel':>11}{'median':>9}{'top-1':>8}{'clear':>8}"
          f"{'greedy':>8}{'HF top1':>8}{'chain':>7}")


def run_shape(a, kind, name, steps, variants, tps, report):
    t0 = time.time()
    os.makedirs(a.workdir, exist_ok=True)
    opts = {"batch": a.train_batch, "length": a.train_len}
    model, cfg, task, info = checkpoints.make(name, kind, steps, train_opts=opts)
    a.vocab = cfg.vocab_size
    mdir = os.path.join(a.workdir, f"{name}.{kind}")
    model.save_pretrained(mdir, safe_serialization=True)
    ids = checkpoints.prompts(cfg, task, a.prompts, a.len).numpy()
    pfile = os.path.join(a.workdir, f"{name}.{kind}.prompts.txt")
    with open(pfile, "w") as f:
        for row in ids:
            f.write(" ".join(map(str, row)) + "\n")
    hf_base = np.stack([l.numpy() for l in quant_ckpt.logits(model, [list(map(int, r)) for r in ids], a.vocab)]) \
        if a.hf else None
    shape = {"shape": name, **info, "setup_s": round(time.time() - t0, 1), "vs_tp1": [], "skipped": []}
    report["shapes"].append(shape)
    base = None
    for label, (quant, kv) in variants.items():
        if a.budget_s and time.time() - T0 > a.budget_s:
            shape["skipped"].append(label)
            continue
        deq, vdir = None, mdir
        if label in quant_ckpt.FORMATS:
            vdir = os.path.join(a.workdir, f"{name}.{kind}.{label}")
            tq = time.time()
            deq = quant_ckpt.write(model, mdir, vdir, label)
            print(f"{name}: {label} quantized and saved in {time.time() - tq:.1f} s", flush=True)
        elif label == "fp8":
            deq = quant_ckpt.fp8_dequantized(model)
        gc.collect()
        torch.cuda.empty_cache()
        hf = hf_top1(a, model, deq, ids, hf_base)
        # tpserve sizes its KV cache from the GPU's free memory, which this process's tensors reduce.
        print(f"{name}: {label}: this process holds {torch.cuda.memory_reserved() / 2**30:.1f} GiB of GPU memory "
              f"({torch.cuda.memory_allocated() / 2**30:.1f} GiB in tensors)", flush=True)
        runs = {}
        with OnHost(model, deq):
            print(f"{name}: {label}: {torch.cuda.memory_reserved() / 2**30:.1f} GiB held while tpserve runs", flush=True)
            for tp in tps:
                out = os.path.join(a.workdir, f"{name}.{kind}.tp{tp}.{label}")
                os.makedirs(out, exist_ok=True)
                runs[tp] = run_binary(a, vdir, pfile, out, tp, quant, kv)
        for tp, r in runs.items():
            if (tp, label) == (1, "auto"):
                base = r
                continue
            if "error" in r or base is None or "error" in base:
                v = {"tp": tp, "quantization": label, "error": r.get("error", "bf16 TP=1 failed")}
            else:
                v = compare(a, base, r, tp, label, hf, model, deq, ids, task)
            shape["vs_tp1"].append(v)
            print_row(shape, v)
            if a.out:
                json.dump(report, open(a.out, "w"), indent=1)
        del deq
        if vdir != mdir:
            shutil.rmtree(vdir, ignore_errors=True)
    if base is not None and task is not None and "greedy" in base:
        shape["bf16_on_chain"] = on_chain(task, ids, base["greedy"])
    shape["total_s"] = round(time.time() - t0, 1)
    del model
    torch.cuda.empty_cache()
    shutil.rmtree(mdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--shapes", default="qwen2-0.5b-instruct,qwen2-7b-instruct")
    ap.add_argument("--tp", default="1,2,4")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--len", type=int, default=32)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--workdir", default="/tmp/tpcheck")
    ap.add_argument("--out", default=None)
    ap.add_argument("--checkpoint", default="random", choices=["random", "trained", "both"],
                    help="HF's random init (the issue's setting) or that model fine-tuned so its distributions are "
                         "peaked (scripts/gpu/checkpoints.py)")
    ap.add_argument("--train-steps", default="300",
                    help="training steps of the trained checkpoint; a comma-separated list: one per shape")
    ap.add_argument("--train-len", type=int, default=64, help="chain length of the trained checkpoint")
    ap.add_argument("--train-batch", type=int, default=32, help="chains per training step")
    ap.add_argument("--quantization", default="auto",
                    help="comma-separated formats, each run at every TP size against bf16 at TP=1, in this order: "
                         + ", ".join([*WEIGHT_FORMATS, "fp8kv"]))
    ap.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "fp8"],
                    help="also run every TP size with this KV cache (bf16 weights), against bf16 at TP=1")
    ap.add_argument("--budget-s", type=float, default=0, help="start no new run after this many seconds (0: none)")
    ap.add_argument("--shape-min-s", type=float, default=0,
                    help="start a shape only with this many seconds of the budget left (its training is not cut)")
    ap.add_argument("--no-hf", dest="hf", action="store_false",
                    help="skip HF's dequantized top-1 and the margins at greedy divergences")
    a = ap.parse_args()
    tps = [int(x) for x in a.tp.split(",")]
    formats = [q for q in a.quantization.split(",") if q != "auto"]
    bad = [q for q in formats if q not in VARIANTS]
    if bad:
        ap.error(f"unknown --quantization {','.join(bad)}; choose from {', '.join(list(VARIANTS)[1:])}")
    if a.kv_cache_dtype != "auto":
        formats.append(a.kv_cache_dtype + "kv")
    variants = {q: VARIANTS[q] for q in ["auto", *formats]}
    report = {"device": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(), "shapes": []}
    kinds = ["random", "trained"] if a.checkpoint == "both" else [a.checkpoint]
    shapes = a.shapes.split(",")
    steps = [int(x) for x in a.train_steps.split(",")]
    steps = dict(zip(shapes, steps if len(steps) > 1 else steps * len(shapes)))
    header()
    for kind, name in [(k, n) for k in kinds for n in shapes]:
        if a.budget_s and time.time() - T0 > a.budget_s - a.shape_min_s:
            report["shapes"].append({"shape": name, "checkpoint": kind, "skipped": ["all (time budget)"], "vs_tp1": []})
            continue
        run_shape(a, kind, name, steps[name], variants, tps, report)
    print("\n=== summary (against bf16 tpserve at TP=1; HF top-1: HF dequantized vs HF bf16; chain: greedy tokens "
          "that follow the task's successor map)")
    header()
    for s in report["shapes"]:
        for v in s["vs_tp1"]:
            print_row(s, v)
        if "train_final_loss" in s:
            print(f"  ({s['shape']} trained {s['train_steps']} steps of {s['train_batch']} x {s['train_len']} tokens, "
                  f"final loss {s['train_final_loss']:.4f}, {s['train_s']} s; bf16 greedy on chain "
                  f"{s.get('bf16_on_chain', float('nan')):.3f}; shape total {s.get('total_s', '-')} s)")
        if s.get("skipped"):
            print(f"  ({s['shape']}: not run within the time budget: {', '.join(s['skipped'])})")
    if a.out:
        json.dump(report, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
