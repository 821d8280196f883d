#!/usr/bin/env python3
"""Makes tests/fixtures/tiny-qwen2-{awq,gptq-int4,gptq-int8,fp8}: tiny-qwen2 quantized into the AWQ, GPTQ and FP8
checkpoint layouts, with goldens from HF transformers running the DEQUANTIZED weights (needs torch + transformers).

A reference quantizer written from the formats' documented layouts (not calling AutoAWQ/AutoGPTQ/llm-compressor):

  AWQ (AutoAWQ "gemm", quant_method awq, zero_point true): for a linear W [out, in] and group g along `in`,
    qweight [in, out/8] int32: eight 4-bit values of consecutive output columns per word, in AWQ's interleaved
      order: nibble i (bits 4i..4i+3) holds column 8c + AWQ_ORDER[i], AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
    qzeros  [in/g, out/8] int32, packed the same way; scales [in/g, out] float16
    W[o, i] = (q[i, o] - z[i/g, o]) * s[i/g, o]             (asymmetric, min/max per group)
  GPTQ (AutoGPTQ v1 checkpoints, quant_method gptq, sym true):
    qweight [in/(32/bits), out] int32 packed along the INPUT: word r holds inputs r*(32/bits) + j at bits j*bits
    qzeros  [groups, out/(32/bits)] int32 packed along the output, sequential order, storing zero - 1 (the v1
      offset: dequantize with stored + 1); scales [groups, out] float16; g_idx [in] int32, the group of each input
      (i // g without desc_act; with desc_act the groups follow an activation order over a permutation)
    W[o, i] = (q[i, o] - (z[g_idx[i], o] + 1)) * s[g_idx[i], o]; group_size -1 = one group over all inputs
  FP8 (quant_method fp8, the vLLM / llm-compressor layout): weight [out, in] float8_e4m3fn and weight_scale
    float32, per tensor (0-d) for the attention projections and per output channel ([out, 1]) for the MLP here;
    W = weight * weight_scale. activation_scheme dynamic (no input_scale).

Embeddings, norms, biases and lm_head stay as in tiny-qwen2 (bf16): the index points embed_tokens and lm_head at
tiny-qwen2's own shards (symbolic links in the fixture folders) and everything else at model-quant.safetensors.

Checks (any failure aborts that variant): unpacking with an independent torch unpacker gives back the integer
codes; the torch dequantization equals the dequantization computed before packing, bit for bit; the quantization
error is within half a step. Goldens (tests/fixtures/REFERENCE_README.md format) come from Qwen2ForCausalLM in
float32, eager attention, loaded with the dequantized float32 weights: prompts p0..p3 of tiny-qwen2 (lengths 1, 5,
17, 64): p{i}.input_ids, last_logits, argmax, greedy (24 tokens); p1.all_logits; plus
ref.model.layers.1.self_attn.k_proj.weight and ref.model.layers.0.mlp.down_proj.weight rows 0..7: the float32
dequantized weights, which tpserve's loader must reproduce exactly.

    python3 scripts/gpu/make_quant_fixtures.py --src tests/fixtures/tiny-qwen2 --out OUT
"""
import argparse, copy, json, os, sys, tempfile, traceback

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Qwen2ForCausalLM

# The golden helpers the other tiny fixtures were made with (same forward pass, greedy loop and metric).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_yarn_golden import forward, greedy, rel_err  # noqa: E402
from quant_ref import LINEARS, quantize  # noqa: E402  (the reference quantizer)

PROMPTS = [0, 1, 2, 3]
ALL_LOGITS = [1]
NEW_TOKENS = 24
REF_TENSORS = {"model.layers.1.self_attn.k_proj.weight": None, "model.layers.0.mlp.down_proj.weight": 8}

VARIANTS = {
    "awq": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm",
            "modules_to_not_convert": None},
    "gptq-int4": {"quant_method": "gptq", "bits": 4, "group_size": 64, "desc_act": True, "sym": True,
                  "damp_percent": 0.01, "true_sequential": True, "static_groups": False},
    "gptq-int8": {"quant_method": "gptq", "bits": 8, "group_size": -1, "desc_act": False, "sym": True,
                  "damp_percent": 0.01, "true_sequential": True, "static_groups": False},
    "fp8": {"quant_method": "fp8", "activation_scheme": "dynamic"},
}


def make_variant(variant, qcfg, src, base_cfg, weights, index, base_goldens, out_dir, report):
    os.makedirs(out_dir, exist_ok=True)
    quant, deq = {}, {}
    for name, t in weights.items():
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            deq[name] = t.float()
            continue
        prefix = name[: -len(".weight")] if name.endswith(".weight") else None
        if prefix and any(prefix.endswith(l) for l in LINEARS):
            parts, d = quantize(prefix.split(".", 3)[3], qcfg, t.float())
            for k, v in parts.items():
                quant[f"{prefix}.{k}"] = v.contiguous()
            deq[name] = d
        else:
            quant[name] = t.contiguous()  # norms and biases as stored
            deq[name] = t.float()
    save_file(quant, os.path.join(out_dir, "model-quant.safetensors"), metadata={"format": "pt"})
    wmap = {k: "model-quant.safetensors" for k in quant}
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        wmap[k] = index["weight_map"][k]
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"quantized_by": "scripts/gpu/make_quant_fixtures.py"},
                   "weight_map": dict(sorted(wmap.items()))}, f, indent=2)
        f.write("\n")
    cfg = copy.deepcopy(base_cfg)
    cfg["quantization_config"] = qcfg
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    # HF reference on the dequantized float32 weights (no quantization_config: plain Qwen2).
    work = tempfile.mkdtemp()
    save_file({k: v.contiguous() for k, v in deq.items()}, os.path.join(work, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(base_cfg, f)
    model = Qwen2ForCausalLM.from_pretrained(work, dtype=torch.float32, attn_implementation="eager").eval()
    for k, v in model.state_dict().items():
        assert torch.equal(v, deq[k]), f"HF model did not load {k} unchanged"
    tensors, prompts = {}, []
    for i in PROMPTS:
        ids = base_goldens[f"p{i}.input_ids"].long()
        logits = forward(model, ids)
        cont = greedy(model, ids, NEW_TOKENS)
        p = f"p{i}."
        tensors[p + "input_ids"] = ids.to(torch.int32)
        tensors[p + "last_logits"] = logits[-1].clone()
        tensors[p + "argmax"] = logits.argmax(-1).to(torch.int32)
        tensors[p + "greedy"] = torch.tensor(cont, dtype=torch.int32)
        if i in ALL_LOGITS:
            tensors[p + "all_logits"] = logits.clone()
        prompts.append({"index": i, "len": len(ids), "greedy": cont, "has_all_logits": i in ALL_LOGITS})
        bf = base_goldens[p + "last_logits"]
        report.append(f"{variant}: p{i} ({len(ids)} tokens) vs unquantized tiny-qwen2: last-logits rel err "
                      f"{rel_err(logits[-1], bf):.3g}, argmax equal at "
                      f"{int((logits.argmax(-1) == base_goldens[p + 'argmax'].long()).sum())}/{len(ids)}, "
                      f"greedy equal {sum(a == b for a, b in zip(cont, base_goldens[p + 'greedy'].tolist()))}/24")
    for k, rows in REF_TENSORS.items():
        tensors["ref." + k] = (deq[k] if rows is None else deq[k][:rows]).clone()
    save_file(tensors, os.path.join(out_dir, "goldens.safetensors"))
    with open(os.path.join(out_dir, "goldens.json"), "w") as f:
        json.dump({"prompts": prompts, "source": "tiny-qwen2 prompts p0..p3", "quantization_config": qcfg,
                   "transformers": transformers.__version__, "torch": torch.__version__}, f, indent=1)
        f.write("\n")
    report.append(f"{variant}: OK, {len(quant)} tensors, "
                  f"{os.path.getsize(os.path.join(out_dir, 'model-quant.safetensors'))} bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="tiny-qwen2 folder")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(min(16, os.cpu_count() or 1))
    torch.manual_seed(0)
    report = [f"transformers {transformers.__version__}, torch {torch.__version__}"]
    base_cfg = json.load(open(os.path.join(args.src, "config.json")))
    index = json.load(open(os.path.join(args.src, "model.safetensors.index.json")))
    weights = {}
    for shard in sorted(set(index["weight_map"].values())):
        weights.update(load_file(os.path.join(args.src, shard)))
    base_goldens = load_file(os.path.join(args.src, "goldens.safetensors"))
    for variant, qcfg in VARIANTS.items():
        try:
            make_variant(variant, qcfg, args.src, base_cfg, weights, index, base_goldens,
                         os.path.join(args.out, "tiny-qwen2-" + variant), report)
        except Exception:
            report.append(f"{variant}: FAILED\n{traceback.format_exc()}")
    text = "\n".join(report) + "\n"
    with open(os.path.join(args.out, "report.txt"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
