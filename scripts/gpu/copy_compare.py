#!/usr/bin/env python3
"""tpserve's CUDA backend against HF transformers on the copy checkpoint (scripts/gpu/copy_task.py), run on the GPU
machine: attention at a distance through tpserve's prefill kernel and split-KV decode.

Per shape: train the copy checkpoint, save it, and build prompts of each length (2k, 8k, 32k tokens) that end
with a 64-token span's second copy, its first copy 1k to ~length tokens back. HF (bf16, SDPA) gives the logits at
the second copy's positions and greedy continuations of the prompts cut after the second copy's first K tokens;
tpserve (bench/cuda:tpserve_gpu_check --logits-last 64 --greedy-drop 64-K) gives the same positions twice, as
decode steps (split-KV decode over the whole prompt) and as ends of prefill chunks over the cached prefix, plus
its greedy continuations, after a whole-prompt prefill. Reported per shape and length:
  hf_copy_acc         HF's teacher-forced top-1 equals the span's next token, positions after the first K
                      (the span tokens are random: only a model that reads the first copy gets them right)
  top1_agreement      tpserve's top-1 equals HF's (HF's tied maxima counted) over all 63 span positions
  greedy_identical    continuations equal to HF's, and how many of them are the span's rest (copy)

    python3 scripts/gpu/copy_compare.py --bin /tmp/d/cuda/bin/tpserve_gpu_check --out $OUT/copy.json
"""
import argparse, json, os, shutil, subprocess, tempfile, time

import numpy as np
import torch

import checkpoints  # scripts/gpu/checkpoints.py
from compare_hf import rel_err

SPAN = 64


def agreement(tp, hf):
    """Top-1 agreement, counting tpserve's choice as agreeing when it is one of HF's tied maxima (bf16 logits)."""
    hf_at_tp = np.take_along_axis(hf, tp.argmax(-1)[..., None], -1)[..., 0]
    return float((hf_at_tp == hf.max(-1)).mean()), float((tp.argmax(-1) == hf.argmax(-1)).mean())


def hf_side(model, group, keep):
    """HF's logits at the last SPAN positions and greedy continuations of each prompt less `SPAN - keep` tokens,
    for prompts of one length (one batch)."""
    ids = torch.stack([p["ids"] for p in group]).cuda()
    with torch.no_grad():
        logits = model(ids, logits_to_keep=SPAN).logits.float().cpu().numpy()
        cut = ids[:, :ids.shape[1] - (SPAN - keep)]
        greedy = model.generate(cut, attention_mask=torch.ones_like(cut), max_new_tokens=SPAN - keep,
                                do_sample=False)[:, cut.shape[1]:].cpu().numpy()
    return logits, greedy


def run_shape(name, binary, lengths, per_length, keep, steps, train_opts, workdir):
    t0 = time.time()
    model, cfg, task, info = checkpoints.make(name, "copy", steps, copy_opts=train_opts)
    mdir = os.path.join(workdir, name)
    model.save_pretrained(mdir, safe_serialization=True)
    groups = [task.prompts(n, per_length, SPAN) for n in lengths]
    hf = [hf_side(model, g, keep) for g in groups]
    del model
    torch.cuda.empty_cache()
    hf_s = time.time() - t0
    pfile = os.path.join(workdir, f"{name}.prompts.txt")
    with open(pfile, "w") as f:
        for g in groups:
            for p in g:
                f.write(" ".join(map(str, p["ids"].tolist())) + "\n")
    odir = os.path.join(workdir, f"{name}.out")
    os.makedirs(odir, exist_ok=True)
    t0 = time.time()
    proc = subprocess.run([binary, "--model", mdir, "--prompts", pfile, "--out", odir, "--new", str(SPAN - keep),
                           "--logits-last", str(SPAN), "--greedy-drop", str(SPAN - keep)],
                          capture_output=True, text=True)
    print(proc.stdout[-2000:], proc.stderr[-3000:])
    shutil.rmtree(mdir, ignore_errors=True)
    if proc.returncode != 0:
        return {"shape": name, **info, "error": proc.stderr[-2000:]}
    tp_s = time.time() - t0
    n = sum(len(g) for g in groups)
    tp = {path: np.fromfile(os.path.join(odir, f), dtype=np.float32).reshape(n, SPAN, cfg.vocab_size)
          for path, f in (("decode", "logits.f32"), ("prefill", "logits_prefill.f32"))}
    tp_greedy = [list(map(int, l.split())) for l in open(os.path.join(odir, "greedy.txt"))]
    res = {"shape": name, **info, "hf_s": round(hf_s, 1), "tpserve_s": round(tp_s, 1), "keep": keep, "by_length": []}
    row = 0
    for length, g, (hf_logits, hf_greedy) in zip(lengths, groups, hf):
        k = len(g)
        span = np.stack([p["span"].numpy() for p in g])
        hf_l = hf_logits[:, :SPAN - 1]  # position j of the second copy predicts span[j + 1]; the last, beyond it
        after = slice(keep - 1, SPAN - 1)  # predictions of span[keep:]
        r = {"len": length, "prompts": k, "distances": [p["distance"] for p in g],
             "hf_copy_acc": float((hf_l.argmax(-1)[:, after] == span[:, keep:]).mean()),
             "hf_top1_prob_mean": float(torch.softmax(torch.tensor(hf_l), -1).max(-1).values.mean()),
             "hf_greedy_copy_acc": float((hf_greedy == span[:, keep:]).mean())}
        for path, logits in tp.items():
            tl = logits[row:row + k, :SPAN - 1]
            ties, strict = agreement(tl, hf_l)
            err = rel_err(tl, hf_l)
            r[path] = {"top1_agreement": ties, "top1_agreement_strict": strict,
                       "rel_err_max": float(err.max()), "rel_err_median": float(np.median(err)),
                       "tpserve_copy_acc": float((tl.argmax(-1)[:, after] == span[:, keep:]).mean())}
        tg = tp_greedy[row:row + k]
        r["greedy_identical"] = sum(tg[i] == hf_greedy[i].tolist() for i in range(k))
        r["tpserve_greedy_copy_acc"] = float(np.mean([np.mean(np.array(tg[i]) == span[i, keep:]) for i in range(k)]))
        res["by_length"].append(r)
        row += k
    print(json.dumps(res), flush=True)
    return res


def table(results):
    lines = [f"{'shape':<22} {'len':>6} {'HF copy':>8} {'HF p1':>6} {'agree dec':>9} {'agree pre':>9} "
             f"{'err dec':>8} {'err pre':>8} {'greedy ==':>9} {'tp copy':>8}"]
    for s in results:
        if "error" in s:
            lines.append(f"{s['shape']:<22} error: {s['error'][-300:]}")
            continue
        for r in s["by_length"]:
            lines.append(f"{s['shape']:<22} {r['len']:>6} {r['hf_copy_acc']:>8.4f} {r['hf_top1_prob_mean']:>6.3f} "
                         f"{r['decode']['top1_agreement']:>9.4f} {r['prefill']['top1_agreement']:>9.4f} "
                         f"{r['decode']['rel_err_max']:>8.4f} {r['prefill']['rel_err_max']:>8.4f} "
                         f"{r['greedy_identical']:>5}/{r['prompts']:<3} {r['tpserve_greedy_copy_acc']:>8.4f}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".devbin/cuda/bin/tpserve_gpu_check")
    ap.add_argument("--shapes", default="qwen2-0.5b-instruct,qwen2-7b-instruct")
    ap.add_argument("--lengths", default="2048,8192,32000")
    ap.add_argument("--per-length", type=int, default=4, help="prompts per length")
    ap.add_argument("--keep", type=int, default=4, help="second-copy tokens the greedy prompts keep")
    ap.add_argument("--train-steps", type=int, default=400)
    ap.add_argument("--max-train-s", default=None, help="stop training after this many seconds (one number, or "
                    "one per shape, comma-separated)")
    ap.add_argument("--lr", default=None, help="AdamW learning rate (one, or one per shape, comma-separated; "
                    "default: copy_task.train's for the shape)")
    ap.add_argument("--recipe", default="grow",
                    help="grow (copy_grow.py: the only one that copies at the real shapes) or a copy_task.RECIPES entry")
    ap.add_argument("--tiny-s", type=float, default=None, help="recipe grow: seconds for the tiny copier "
                    "(default a third of --max-train-s; head size 128 needed more than 30 s on 2026-12-01)")
    ap.add_argument("--finetune", default=None, help="recipe grow: the fine-tuning's copy_task.RECIPES entry "
                    "(default long; long8k adds >= 100 steps on 8k-token sequences)")
    ap.add_argument("--out", default="copy.json")
    a = ap.parse_args()
    if not 1 <= a.keep < SPAN:
        ap.error(f"--keep must be 1..{SPAN - 1}")
    lengths = [int(x) for x in a.lengths.split(",")]
    shapes = a.shapes.split(",")

    def per_shape(v):  # "x" or "x,y,..." (one per shape) -> floats, one per shape
        xs = [float(x) for x in v.split(",")] if v else [None]
        if len(xs) == 1:
            xs = xs * len(shapes)
        if len(xs) != len(shapes):
            ap.error(f"need one value or {len(shapes)}: {v}")
        return xs
    max_s, lrs = per_shape(a.max_train_s), per_shape(a.lr)
    # The checkpoint goes to memory when it fits (7B: 15 GB; writing it to disk takes longer than the run).
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 40e9 else None
    # The grow recipe's own options, where given.
    grow = {k: v for k, v in (("tiny_s", a.tiny_s), ("finetune", a.finetune)) if v and a.recipe == "grow"}
    results = {"device": torch.cuda.get_device_name(0), "shapes": []}
    with tempfile.TemporaryDirectory(dir=shm or os.environ.get("TMPDIR", "/tmp")) as work:
        for i, s in enumerate(shapes):
            results["shapes"].append(run_shape(s, a.bin, lengths, a.per_length, a.keep, a.train_steps,
                                               {"max_s": max_s[i], "lr": lrs[i], "recipe": a.recipe, **grow}, work))
            json.dump(results, open(a.out, "w"), indent=1)
    print(table(results["shapes"]))


if __name__ == "__main__":
    main()
