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

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
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


def to_i32(x):
    """int64 words in [0, 2^32) to int32 with the same bits."""
    x = x.to(torch.int64)
    return torch.where(x >= 2**31, x - 2**32, x).to(torch.int32)


def words(p):
    return p.to(torch.int64) & 0xFFFFFFFF


# ---- AWQ -------------------------------------------------------------------------------------------------
def awq_pack(q):
    """q [rows, cols] codes 0..15 -> [rows, cols/8] int32 in AWQ's interleaved order."""
    rows, cols = q.shape
    q = q.to(torch.int64).view(rows, cols // 8, 8)
    out = torch.zeros(rows, cols // 8, dtype=torch.int64)
    for i, col in enumerate(AWQ_ORDER):
        out |= q[:, :, col] << (4 * i)
    return to_i32(out)


def awq_unpack(p):
    """Inverse of awq_pack, written the other way round: nibble i of word c is column 8c + AWQ_ORDER[i]."""
    w = words(p)
    rows, n = w.shape
    out = torch.zeros(rows, n * 8, dtype=torch.int64)
    for i in range(8):
        out[:, AWQ_ORDER[i]::8] = (w >> (4 * i)) & 15
    return out


def awq_quantize(W, g):
    out, inp = W.shape
    Wt = W.t().reshape(inp // g, g, out)  # [groups, g, out]
    wmax, wmin = Wt.amax(1), Wt.amin(1)
    s = ((wmax - wmin).clamp(min=1e-5) / 15).half().float()
    z = (-torch.round(wmin / s)).clamp(0, 15)
    q = (torch.round(Wt / s[:, None]) + z[:, None]).clamp(0, 15).to(torch.int64)  # [groups, g, out]
    deq = ((q.float() - z[:, None]) * s[:, None]).reshape(inp, out).t().contiguous()
    q = q.reshape(inp, out)
    t = {"qweight": awq_pack(q), "qzeros": awq_pack(z.to(torch.int64)), "scales": s.half()}
    # round trip through the independent unpacker
    assert torch.equal(awq_unpack(t["qweight"]), q)
    assert torch.equal(awq_unpack(t["qzeros"]), z.to(torch.int64))
    zq = awq_unpack(t["qzeros"]).repeat_interleave(g, 0)
    sq = t["scales"].float().repeat_interleave(g, 0)
    again = ((awq_unpack(t["qweight"]).float() - zq.float()) * sq).t()
    assert torch.equal(again, deq), "AWQ dequantization differs"
    # within one step (rounding, plus clipping at the top code where the float16 scale rounded down)
    assert bool(((deq - W).abs() <= s.repeat_interleave(g, 0).t() + 1e-7).all())
    return t, deq


# ---- GPTQ ------------------------------------------------------------------------------------------------
def pack_rows(q, bits):
    """q [rows, cols] -> [rows/(32/bits), cols]: word r holds rows r*k + j at bits j*bits."""
    k = 32 // bits
    rows, cols = q.shape
    q = q.to(torch.int64).view(rows // k, k, cols)
    out = torch.zeros(rows // k, cols, dtype=torch.int64)
    for j in range(k):
        out |= q[:, j, :] << (bits * j)
    return to_i32(out)


def pack_cols(q, bits):
    """q [rows, cols] -> [rows, cols/(32/bits)]: word c holds columns c*k + j at bits j*bits."""
    return pack_rows(q.t().contiguous(), bits).t().contiguous()


def unpack_rows(p, bits):
    k, mask = 32 // bits, (1 << bits) - 1
    w = words(p)
    return torch.stack([(w >> (bits * j)) & mask for j in range(k)], 1).reshape(w.shape[0] * k, w.shape[1])


def unpack_cols(p, bits):
    return unpack_rows(p.t().contiguous(), bits).t().contiguous()


def gptq_quantize(W, bits, g, desc_act):
    out, inp = W.shape
    g = inp if g == -1 else g
    groups = inp // g
    maxq = (1 << bits) - 1
    zero = (maxq + 1) // 2
    if desc_act:
        # Activation order: GPTQ quantizes inputs in decreasing importance; the column norm stands in for the
        # Hessian diagonal. Groups are consecutive in that order, so g_idx is not monotonic.
        perm = torch.argsort(W.norm(dim=0), descending=True)
        g_idx = torch.empty(inp, dtype=torch.int64)
        g_idx[perm] = torch.arange(inp) // g
    else:
        g_idx = torch.arange(inp) // g
    s = torch.empty(groups, out)
    for gi in range(groups):
        amax = W[:, g_idx == gi].abs().amax(1)
        s[gi] = torch.where(amax > 0, 2 * amax / maxq, torch.ones_like(amax))
    s = s.half().float()
    si = s[g_idx]  # [in, out]
    q = (torch.round(W.t() / si) + zero).clamp(0, maxq).to(torch.int64)  # [in, out]
    deq = ((q.float() - zero) * si).t().contiguous()
    z = torch.full((groups, out), zero - 1, dtype=torch.int64)  # v1 checkpoints store zero - 1
    t = {"qweight": pack_rows(q, bits), "qzeros": pack_cols(z, bits), "scales": s.half(),
         "g_idx": g_idx.to(torch.int32)}
    assert torch.equal(unpack_rows(t["qweight"], bits), q)
    assert torch.equal(unpack_cols(t["qzeros"], bits), z)
    gi = t["g_idx"].long()
    again = ((unpack_rows(t["qweight"], bits).float() - (unpack_cols(t["qzeros"], bits)[gi].float() + 1))
             * t["scales"].float()[gi]).t()
    assert torch.equal(again, deq), "GPTQ dequantization differs"
    assert bool(((deq - W).abs() <= si.t() + 1e-7).all())
    return t, deq


# ---- FP8 -------------------------------------------------------------------------------------------------
def fp8_quantize(W, per_channel):
    fmax = torch.finfo(torch.float8_e4m3fn).max  # 448
    amax = W.abs().amax(1, keepdim=True) if per_channel else W.abs().amax().reshape(())
    s = (amax / fmax).clamp(min=1e-12).float()
    q = (W / s).clamp(-fmax, fmax).to(torch.float8_e4m3fn)
    deq = q.float() * s
    t = {"weight": q, "weight_scale": s.contiguous()}
    assert torch.equal(t["weight"].view(torch.uint8).view(torch.float8_e4m3fn).float() * s, deq)
    # E4M3 keeps 3 mantissa bits: relative error <= 2^-4, absolute 2^-10 * scale among subnormals
    assert bool(((deq - W).abs() <= W.abs() * 2**-4 + s * 2**-10 + 1e-12).all()), "FP8 error too large"
    return t, deq


def quantize(name, cfg, W):
    m = cfg["quant_method"]
    if m == "awq":
        return awq_quantize(W, cfg["group_size"])
    if m == "gptq":
        return gptq_quantize(W, cfg["bits"], cfg["group_size"], cfg["desc_act"])
    return fp8_quantize(W, per_channel=name.startswith("mlp."))


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
