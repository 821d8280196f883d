#!/usr/bin/env python3
"""Makes tests/fixtures/tiny-qwen2-yarn: YaRN goldens from HuggingFace transformers (needs torch + transformers).

The checkpoint is tiny-qwen2's (same bf16 weights); its config is tiny-qwen2's with the Qwen2 model card's YaRN
block scaled down: max_position_embeddings 128 and
    "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128}
so the model serves 4 x 128 = 512 positions and the prompts (150, 300, 450 tokens) run far past the original
context. Qwen2ForCausalLM computes in float32 on the CPU from the weights upcast, as the other tiny goldens were
made, and the outputs follow tests/fixtures/REFERENCE_README.md:

    goldens.safetensors   p{i}.input_ids, p{i}.last_logits, p{i}.argmax, p{i}.greedy (24 tokens),
                          p0.all_logits, p0.last_logits_f64; rope.inv_freq and rope.attention_scaling
                          (HF's own table for this config)
    goldens.json          prompts, lengths, greedy continuations, versions
    rope_cases.json       HF's inv_freq and attention_scaling for several YaRN configs (both key layouts,
                          defaults, attention_factor, mscale/mscale_all_dim, truncate, factor null)
    config.json           the yarn config
    report.txt            how far the goldens are from plain RoPE and from YaRN without its attention factor,
                          so a test that ignored either would fail

    python3 scripts/gpu/make_yarn_golden.py --src tests/fixtures/tiny-qwen2 --out OUT
"""
import argparse, copy, json, os, shutil, tempfile

import torch
import transformers
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

PROMPT_LENS = [150, 300, 450]
NEW_TOKENS = 24
SEED = 24
YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128}

# Configs for rope_cases.json: (name, config.json fields). Head dim = hidden_size / num_attention_heads.
ROPE_CASES = [
    ("fixture", {"hidden_size": 256, "num_attention_heads": 4, "max_position_embeddings": 128,
                 "rope_theta": 1e6, "rope_scaling": YARN}),
    ("qwen2_72b_card", {"hidden_size": 8192, "num_attention_heads": 64, "max_position_embeddings": 32768,
                        "rope_theta": 1e6,
                        "rope_scaling": {"type": "yarn", "factor": 4.0,
                                         "original_max_position_embeddings": 32768}}),
    ("qwen2_05b_card", {"hidden_size": 896, "num_attention_heads": 14, "max_position_embeddings": 32768,
                        "rope_theta": 1e6,
                        "rope_scaling": {"type": "yarn", "factor": 4.0,
                                         "original_max_position_embeddings": 32768}}),
    ("rope_parameters_betas", {"hidden_size": 512, "num_attention_heads": 8, "max_position_embeddings": 4096,
                               "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0,
                                                   "beta_fast": 16, "beta_slow": 2}}),
    ("attention_factor", {"hidden_size": 1024, "num_attention_heads": 8, "max_position_embeddings": 16384,
                          "rope_theta": 500000.0,
                          "rope_scaling": {"rope_type": "yarn", "factor": 8.0, "attention_factor": 1.5,
                                           "original_max_position_embeddings": 2048}}),
    ("mscale_no_truncate", {"hidden_size": 512, "num_attention_heads": 8, "max_position_embeddings": 163840,
                            "rope_theta": 10000.0,
                            "rope_scaling": {"type": "yarn", "factor": 40.0, "mscale": 0.707,
                                             "mscale_all_dim": 1.0, "truncate": False,
                                             "original_max_position_embeddings": 4096}}),
    ("factor_null", {"hidden_size": 256, "num_attention_heads": 4, "max_position_embeddings": 8192,
                     "rope_theta": 1e6,
                     "rope_scaling": {"type": "yarn", "factor": None,
                                      "original_max_position_embeddings": 2048}}),
]


def rope_case(name, fields):
    d = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 32,
         "intermediate_size": 32, "num_hidden_layers": 1}
    d.update(copy.deepcopy(fields))
    rope = Qwen2RotaryEmbedding(config=Qwen2Config.from_dict(copy.deepcopy(d)))
    assert rope.rope_type == "yarn", (name, rope.rope_type)
    return {"name": name, "config": fields, "inv_freq": rope.inv_freq.float().tolist(),
            "attention_scaling": float(rope.attention_scaling)}


def load(mdir, dtype):
    model = Qwen2ForCausalLM.from_pretrained(mdir, dtype=dtype, attn_implementation="eager")
    return model.to(dtype).eval()


def rel_err(got, ref):
    """max |got - ref| / max |ref| (the fixtures' tolerance metric)."""
    return float((got - ref).abs().max() / ref.abs().max())


def forward(model, ids):
    with torch.no_grad():
        return model(ids[None]).logits[0].float()


def greedy(model, ids, n):
    out = []
    for _ in range(n):
        nxt = int(forward(model, ids)[-1].argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([nxt])])
    return out


def model_dir(src, work, name, config):
    d = os.path.join(work, name)
    os.makedirs(d)
    for f in os.listdir(src):
        if f.endswith(".safetensors") and f.startswith("model") or f in ("model.safetensors.index.json",
                                                                          "generation_config.json"):
            shutil.copy(os.path.join(src, f), d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="tiny-qwen2 folder (weights and base config)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(min(16, os.cpu_count() or 1))
    report = [f"transformers {transformers.__version__}, torch {torch.__version__}"]

    base = json.load(open(os.path.join(args.src, "config.json")))
    config = copy.deepcopy(base)
    config["max_position_embeddings"] = 128
    config["rope_scaling"] = copy.deepcopy(YARN)
    plain = copy.deepcopy(base)
    plain["max_position_embeddings"] = 512
    no_mscale = copy.deepcopy(config)
    no_mscale["rope_scaling"]["attention_factor"] = 1.0

    work = tempfile.mkdtemp()
    model = load(model_dir(args.src, work, "yarn", config), torch.float32)
    rot = model.model.rotary_emb
    assert rot.rope_type == "yarn", rot.rope_type
    report.append(f"rotary: {rot.rope_type}, attention_scaling {rot.attention_scaling}")

    gen = torch.Generator().manual_seed(SEED)
    vocab = base["vocab_size"]
    # clone(): safetensors refuses tensors that share storage (last_logits is a row of all_logits).
    tensors = {"rope.inv_freq": rot.inv_freq.float().clone(),
               "rope.attention_scaling": torch.tensor([float(rot.attention_scaling)], dtype=torch.float32)}
    prompts, all_logits = [], []
    for i, n in enumerate(PROMPT_LENS):
        ids = torch.randint(2, vocab, (n,), generator=gen)  # 0 and 1 are bos/eos
        logits = forward(model, ids)
        cont = greedy(model, ids, NEW_TOKENS)
        p = f"p{i}."
        tensors[p + "input_ids"] = ids.to(torch.int32)
        tensors[p + "last_logits"] = logits[-1].clone()
        tensors[p + "argmax"] = logits.argmax(-1).to(torch.int32)
        tensors[p + "greedy"] = torch.tensor(cont, dtype=torch.int32)
        if i == 0:
            tensors[p + "all_logits"] = logits.clone()
        prompts.append({"index": i, "len": n, "greedy": cont, "has_all_logits": i == 0})
        all_logits.append(logits)
    save_file(tensors, os.path.join(args.out, "goldens.safetensors"))
    with open(os.path.join(args.out, "goldens.json"), "w") as f:
        json.dump({"prompts": prompts, "seed": SEED, "transformers": transformers.__version__,
                   "torch": torch.__version__, "rope_scaling": YARN}, f, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    # Extras: a failure here is reported and leaves the goldens above intact.
    try:
        model64 = load(os.path.join(work, "yarn"), torch.float64)
        ids0 = tensors["p0.input_ids"].long()
        with torch.no_grad():
            l64 = model64(ids0[None]).logits[0, -1]
        tensors["p0.last_logits_f64"] = l64.to(torch.float64).clone()
        save_file(tensors, os.path.join(args.out, "goldens.safetensors"))
        report.append(f"p0 float32 vs float64 last logits: rel err "
                      f"{rel_err(tensors['p0.last_logits'].double(), l64):.3g}")
    except Exception as e:
        report.append(f"float64 pass failed: {e!r}")
    # What a backend that ignored YaRN, or only its attention factor, would be off by.
    for name, cfg in (("plain RoPE", plain), ("YaRN without attention factor", no_mscale)):
        try:
            other = load(model_dir(args.src, work, name.replace(" ", "_"), cfg), torch.float32)
            for i, n in enumerate(PROMPT_LENS):
                got = forward(other, tensors[f"p{i}.input_ids"].long())
                ref = all_logits[i]
                per_pos = [rel_err(got[t], ref[t]) for t in range(n)]
                agree = int((got.argmax(-1) == ref.argmax(-1)).sum())
                report.append(f"{name}: p{i} ({n} tokens) last-logits rel err {per_pos[-1]:.3g}, "
                              f"max over positions >= 128: {max(per_pos[128:]):.3g}, argmax equal at {agree}/{n}")
        except Exception as e:
            report.append(f"{name} comparison failed: {e!r}")
    cases = []
    for name, fields in ROPE_CASES:
        try:
            cases.append(rope_case(name, fields))
        except Exception as e:  # report and keep the others
            report.append(f"rope case {name} failed in transformers: {e!r}")
    with open(os.path.join(args.out, "rope_cases.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "cases": cases}, f, indent=1)
        f.write("\n")
    report.append(f"rope cases: {[c['name'] for c in cases]}")
    text = "\n".join(report) + "\n"
    with open(os.path.join(args.out, "report.txt"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
