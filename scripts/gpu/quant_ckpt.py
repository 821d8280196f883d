"""Quantized copies of an HF Qwen2 model held on the GPU, for tp_check.py's fidelity runs (issue 20).

write(): the model's decoder linears quantized by the reference quantizer (quant_ref.py) into the AWQ or GPTQ
layout, saved as one safetensors file with the format's `quantization_config` in config.json (what Qwen's
official -AWQ / -GPTQ checkpoints carry); returns the dequantized weights. fp8_dequantized(): what
`--quantization fp8` computes at load (per output channel E4M3, scale amax/448), for HF. swapped(): the HF
model with its linears replaced by dequantized weights, so HF's own top-1 under a format separates the format's
error from tpserve's.
"""
import contextlib, json, os, re, shutil

import torch

import quant_ref  # scripts/gpu/quant_ref.py

GROUP = 128
_GPTQ = {"quant_method": "gptq", "sym": True, "damp_percent": 0.01, "true_sequential": True,
         "static_groups": False, "checkpoint_format": "gptq"}
# Label -> quantization_config (group size 128 throughout, as Qwen's official checkpoints).
FORMATS = {
    "gptq-int8": {**_GPTQ, "bits": 8, "group_size": GROUP, "desc_act": False},
    "awq": {"quant_method": "awq", "bits": 4, "group_size": GROUP, "zero_point": True, "version": "gemm",
            "modules_to_not_convert": None},
    "gptq-int4": {**_GPTQ, "bits": 4, "group_size": GROUP, "desc_act": False},
    "gptq-int4-act": {**_GPTQ, "bits": 4, "group_size": GROUP, "desc_act": True},
}
# Linears that read the same input: with desc_act they share one act order (AutoGPTQ's comes from the
# shared input's Hessian), so tpserve can stream the fused q/k/v and gate/up GEMVs through one permutation.
_SHARED_INPUT = [("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("mlp.gate_proj", "mlp.up_proj")]


def linears(model):
    """{state_dict name of the weight: its layer path inside the decoder layer}, every decoder linear."""
    out = {}
    for name, _ in model.named_parameters():
        prefix = name[: -len(".weight")]
        sub = next((l for l in quant_ref.LINEARS if prefix.endswith(l)), None)
        if name.endswith(".weight") and sub is not None:
            out[name] = sub
    return out


def _act_orders(state, qcfg):
    """{weight name: permutation} for desc_act: decreasing column norm of the layers sharing the input."""
    if not qcfg.get("desc_act"):
        return {}
    perms = {}
    layers = sorted({m.group(1) for m in (re.match(r"(.*\.layers\.\d+)\.", k) for k in state) if m})
    for layer in layers:
        for group in _SHARED_INPUT:
            names = [f"{layer}.{sub}.weight" for sub in group]
            norm = torch.stack([state[n].float().pow(2).sum(0) for n in names]).sum(0).sqrt()
            perm = torch.argsort(norm, descending=True)
            perms.update({n: perm for n in names})
    return perms


def write(model, src_dir, out_dir, label):
    """Saves `model` (HF Qwen2, bf16) quantized as FORMATS[label] into out_dir; the config comes from the
    bf16 checkpoint in src_dir. Returns {weight name: dequantized bf16 tensor on the model's device}."""
    qcfg = FORMATS[label]
    state = model.state_dict()
    lin = linears(model)
    perms = _act_orders(state, qcfg)
    tensors, deq = {}, {}
    for name, t in state.items():
        if name in lin:
            parts, d = quant_ref.quantize(lin[name], qcfg, t.float(), perms.get(name))
            prefix = name[: -len(".weight")]
            tensors.update({f"{prefix}.{k}": v.contiguous().cpu() for k, v in parts.items()})
            deq[name] = d.to(t.dtype)
        else:
            tensors[name] = t.contiguous().cpu()
    cfg = json.load(open(os.path.join(src_dir, "config.json")))
    if cfg.get("tie_word_embeddings"):
        tensors.pop("lm_head.weight", None)  # shared with the embedding, as HF saves tied models
    from safetensors.torch import save_file  # the device has safetensors; the dev box's tests do not need it
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    cfg["quantization_config"] = qcfg
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    gen = os.path.join(src_dir, "generation_config.json")
    if os.path.exists(gen):
        shutil.copy(gen, out_dir)
    return deq


def fp8_dequantized(model):
    """The weights `--quantization fp8` runs on: each decoder linear per output channel in E4M3."""
    lin = linears(model)
    return {name: quant_ref.fp8_quantize(p.float(), per_channel=True)[1].to(p.dtype)
            for name, p in model.named_parameters() if name in lin}


@contextlib.contextmanager
def swapped(model, weights):
    """`model` with the parameters named in `weights` replaced for the duration (no copies kept)."""
    params = dict(model.named_parameters())
    saved = {}
    try:
        for k, v in (weights or {}).items():
            saved[k] = params[k].data
            params[k].data = v
        yield model
    finally:
        for k, v in saved.items():
            params[k].data = v


@torch.no_grad()
def logits(model, rows, vocab):
    """Float32 logits [len, vocab] at every position of each token list in `rows` (one forward each unless
    all have one length)."""
    dev = next(model.parameters()).device
    if len({len(r) for r in rows}) == 1:
        out = model(input_ids=torch.tensor(rows, device=dev)).logits[..., :vocab].float().cpu()
        return list(out)
    return [model(input_ids=torch.tensor([r], device=dev)).logits[0, :, :vocab].float().cpu() for r in rows]
