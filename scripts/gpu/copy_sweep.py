#!/usr/bin/env python3
"""Which copy-task recipe (copy_task.RECIPES) and learning rate make a model copy at a distance soonest: trains
tiny Qwen2-like models (copy_tiny.py) with each variant in parallel processes on one GPU for a fixed time,
then measures the copy accuracy on 2k- and 8k-token prompts (the span 1k tokens to the whole prompt back),
prints a table and writes the best variant to --pick (JSON: recipe, lr), which run_copy_suite.sh's RECIPE/LR
take for the real shapes. The ranking: 8k accuracy, then 2k, then the last training accuracy.

    python3 scripts/gpu/copy_sweep.py --seconds 150 --parallel 9 --pick $OUT/pick.json > $OUT/sweep.txt
"""
import argparse, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
# name: (recipe, lr, extra copy_tiny arguments). The tiny model: 4 layers, width 256, 4 heads of 64 (the
# 0.5B shape's head size), 2 KV heads; "deep" has 12 layers, for how depth changes the picture.
VARIANTS = {
    "base": ("base", 1e-3, []),
    "multi": ("multi", 1e-3, []),
    "multi-3e-3": ("multi", 3e-3, []),
    "direct": ("direct", 1e-3, []),
    "prev": ("prev", 1e-3, []),
    "prev-3e-3": ("prev", 3e-3, []),
    "prev_direct": ("prev_direct", 1e-3, []),
    "deep-multi": ("multi", 1e-3, ["--layers", "12"]),
    "deep-prev": ("prev", 1e-3, ["--layers", "12"]),
    "base_zres": ("base_zres", 1e-3, []),
    "deep-base_zres": ("base_zres", 1e-3, ["--layers", "12"]),
    "deep-multi_zres": ("multi_zres", 1e-3, ["--layers", "12"]),
    "deep24-base_zres": ("base_zres", 1e-3, ["--layers", "24"]),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=150, help="training time of each variant")
    ap.add_argument("--parallel", type=int, default=9)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--eval-lengths", default="2048,8192")
    ap.add_argument("--pick", default=None, help="write the best variant's recipe and lr here")
    a = ap.parse_args()
    names = a.variants.split(",")
    results, running = {}, []

    def reap(block):
        for name, proc in list(running):
            if block or proc.poll() is not None:
                out, _ = proc.communicate()
                lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
                results[name] = json.loads(lines[-1][7:]) if lines else {"error": out[-800:]}
                tail = [l for l in out.splitlines() if "copy train" in l][-6:]
                print(f"--- {name}\n" + "\n".join(tail), flush=True)
                running.remove((name, proc))
                if not block:
                    return

    for name in names:
        recipe, lr, extra = VARIANTS[name]
        while len(running) >= a.parallel:
            reap(False) if any(p.poll() is not None for _, p in running) else running[0][1].wait()
        cmd = [sys.executable, os.path.join(HERE, "copy_tiny.py"), "--recipe", recipe, "--lr", str(lr),
               "--dim", "256", "--heads", "4", "--kv-heads", "2", "--head-dim", "64", "--tokens", "8192",
               "--steps", "1000000", "--max-s", str(a.seconds), "--eval-lengths", a.eval_lengths, *extra]
        running.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                               cwd=HERE)))
    while running:
        reap(True)
    print(f"{'variant':<14} {'steps':>6} {'phases at':>14} {'train acc':>9} {'copy 2k':>8} {'copy 8k':>8}")
    for name in names:
        r = results[name]
        if "error" in r:
            print(f"{name:<14} error: {r['error'][-300:]}")
            continue
        print(f"{name:<14} {r['train_steps']:>6} {str(r['train_phase_steps']):>14} {r['train_final_acc']:>9.4f} "
              f"{r.get('eval_2048') or 0:>8.4f} {r.get('eval_8192') or 0:>8.4f}")
    ok = [n for n in names if "error" not in results[n]]
    if a.pick and ok:
        best = max(ok, key=lambda n: (results[n].get("eval_8192") or 0, results[n].get("eval_2048") or 0,
                                      results[n]["train_final_acc"]))
        json.dump({"variant": best, "recipe": VARIANTS[best][0], "lr": VARIANTS[best][1], **results[best]},
                  open(a.pick, "w"))
        print(f"pick: {best}")


if __name__ == "__main__":
    main()
