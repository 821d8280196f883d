#!/usr/bin/env python3
"""Grows a shallow copier into a real Qwen2 shape: the copy task (copy_task.py) is learnt in ~500 steps by a
4-layer model, while 12- and 24-layer models and the 0.5B shape stay on the plateau for 1,000+ steps (H200,
2026-12-01, docs/performance.md "Fidelity at a distance"). So the tiny model (copy_tiny.py, at the target's
head size) learns it first, `grow` writes its weights into the first layers of the target, and the whole
target is then fine-tuned on the task's long phase, every weight taking part.

grow() is function-preserving when `noise` is 0: the tiny model's residual stream lives in the target's first
`w` dimensions (the rest stay zero), each RMSNorm weight is scaled by sqrt(w / hidden) so that the norm over
the wider, zero-padded stream gives the same values, the tiny model's query heads go to query heads of the
same KV group (its group size must not exceed the target's), and every other weight is zero: extra heads
write nothing, extra layers are identities, extra vocabulary rows score 0. A tiny head size that divides the
target's (64 into 128) is grown too: RoPE's rotation pair j of head size h turns at theta^(-2j/h), the same as
pair r*j of head size r*h, so query/key dimensions j and j + h/2 go to r*j and r*j + r*h/2, and the queries are
scaled by sqrt(r) for the wider head's 1/sqrt(r*h) softmax scale (values and o_proj use the same map). With `noise` > 0 the other
weights are N(0, noise) instead (norm weights stay 1), so that nothing in the target is dead before the
fine-tuning. Both models use HF's Qwen2 parameter names (copy_tiny's modules are named as HF's).

    python3 scripts/gpu/copy_grow.py --check        # the dev box: growth preserves a random tiny model's logits
"""
import argparse, math, sys, time, types

import torch

import copy_task


def dims(model):
    """(vocab, width, layers, heads, kv heads, head size, intermediate) of an HF-named Qwen2 model."""
    vocab, width = model.model.embed_tokens.weight.shape
    attn = model.model.layers[0].self_attn
    hd = attn.head_dim
    return (vocab, width, len(model.model.layers), attn.q_proj.out_features // hd, attn.k_proj.out_features // hd,
            hd, model.model.layers[0].mlp.gate_proj.out_features)


def grow(src, dst, noise=0.0, seed=0):
    """Writes the tiny model `src` into `dst` in place (see the module docstring)."""
    sv, sw, sl, sh, skv, shd, si = dims(src)
    dv, dw, dl, dh, dkv, dhd, di = dims(dst)
    sg, dg = sh // skv, dh // dkv
    if dh % dkv or sh % skv:
        raise ValueError(f"query heads must divide into KV groups: {sh}/{skv} -> {dh}/{dkv}")
    if not (sv <= dv and sw <= dw and sl <= dl and skv <= dkv and sg <= dg and dhd % shd == 0 and shd % 2 == 0
            and si <= di):
        raise ValueError(f"cannot grow {dims(src)} into {dims(dst)}")
    ratio = dhd // shd
    # Source head dimension e -> target dimension, keeping each RoPE pair's frequency (module docstring).
    dim_map = torch.tensor([ratio * e if e < shd // 2 else ratio * (e - shd // 2) + dhd // 2 for e in range(shd)])
    q_scale = math.sqrt(ratio)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    r = math.sqrt(sw / dw)
    with torch.no_grad():
        for name, p in dst.named_parameters():  # tied lm_head / embedding: one tensor, listed once
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.fill_(1.0)
            elif noise > 0 and not name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen).mul_(noise))
            else:
                p.zero_()
        s, d = src.model, dst.model
        d.embed_tokens.weight[:sv, :sw] = s.embed_tokens.weight
        if dst.lm_head.weight.data_ptr() != d.embed_tokens.weight.data_ptr():
            dst.lm_head.weight[:sv, :sw] = src.lm_head.weight
        d.norm.weight[:sw] = s.norm.weight * r
        head = lambda t: slice(t * shd, (t + 1) * shd)  # a source head's rows
        dhead = lambda t: t * dhd + dim_map  # where they go in the target
        for i in range(sl):
            sa, da = s.layers[i], d.layers[i]
            da.input_layernorm.weight[:sw] = sa.input_layernorm.weight * r
            da.post_attention_layernorm.weight[:sw] = sa.post_attention_layernorm.weight * r
            for j in range(sh):  # query head j of KV group j // sg -> the same group's (j % sg)-th head
                t = (j // sg) * dg + j % sg
                rows = dhead(t)
                da.self_attn.q_proj.weight[rows, :sw] = sa.self_attn.q_proj.weight[head(j)] * q_scale
                da.self_attn.q_proj.bias[rows] = sa.self_attn.q_proj.bias[head(j)] * q_scale
                da.self_attn.o_proj.weight[:sw, rows] = sa.self_attn.o_proj.weight[:, head(j)]
            for k in range(skv):
                for proj in ("k_proj", "v_proj"):
                    sp, dp = getattr(sa.self_attn, proj), getattr(da.self_attn, proj)
                    dp.weight[dhead(k), :sw] = sp.weight[head(k)]
                    dp.bias[dhead(k)] = sp.bias[head(k)]
            da.mlp.gate_proj.weight[:si, :sw] = sa.mlp.gate_proj.weight
            da.mlp.up_proj.weight[:si, :sw] = sa.mlp.up_proj.weight
            da.mlp.down_proj.weight[:sw, :si] = sa.mlp.down_proj.weight


TINY = dict(vocab=16384, dim=256, layers=4, heads=4, kv_heads=2)  # copies after ~500 steps of recipe "base"
RECIPE_LONG = "long"


def grow_copier(model, cfg, steps, log=print, max_s=None, lr=None, tiny_s=None, noise=0.005,
                eval_lengths=(2048, 8192), tiny_tokens=8192, tokens=None, finetune=RECIPE_LONG, tiny_head_dim=None):
    """Trains the tiny copier at `model`'s head size, grows it into `model` (an HF Qwen2, bf16, on the GPU) with
    `noise` on the other weights, and fine-tunes the whole model on the long phase for up to `steps` steps or
    `max_s` seconds (the tiny model gets `tiny_s`, default a third of max_s); `finetune` names the
    copy_task.RECIPES entry of the fine-tuning ("long" or "long8k"). The tiny model's head size is
    `tiny_head_dim`, default 64 where it divides the target's: on the H200 (2026-12-01) a head-size-128 tiny
    learnt the short phase in 59 s but not the 2k-token phase in the next 51 s (1,700 steps), while head size
    64 learns both in ~37 s. Returns (task, info)."""
    import copy_tiny
    t0 = time.time()
    hd = model.model.layers[0].self_attn.head_dim
    if tiny_head_dim is None:
        tiny_head_dim = 64 if hd % 64 == 0 else hd
    task = copy_task.CopyTask(types.SimpleNamespace(vocab_size=TINY["vocab"],
                                                    max_position_embeddings=cfg.max_position_embeddings))
    torch.manual_seed(0)
    tiny = copy_tiny.make(TINY["vocab"], TINY["dim"], TINY["layers"], TINY["heads"], TINY["kv_heads"], tiny_head_dim)
    if tiny_s is None and max_s is not None:
        tiny_s = max_s / 3
    info_tiny = copy_task.train(tiny, task, 100000, tokens=tiny_tokens, lr=1e-3, log=lambda m: log("tiny: " + m),
                                max_s=tiny_s, recipe="base")
    tiny_acc = {n: copy_task.copy_accuracy(tiny, task, n, n=2) for n in eval_lengths}
    log(f"tiny copier: {info_tiny['train_steps']} steps, copy accuracy {tiny_acc}")
    with torch.no_grad():
        grow(tiny, model, noise=noise)
    del tiny
    grown_acc = {n: copy_task.copy_accuracy(model, task, n, n=2) for n in eval_lengths}
    log(f"grown (noise {noise}): copy accuracy {grown_acc}")
    left = None if max_s is None else max(0.0, max_s - (time.time() - t0))
    n_params = sum(p.numel() for p in model.parameters())
    info = copy_task.train(model, task, steps, tokens=tokens, lr=lr or (2e-4 if n_params < 2e9 else 1e-4), log=log, max_s=left,
                           recipe=finetune)
    info.update(train_recipe="grow", tiny_steps=info_tiny["train_steps"], tiny_head_dim=tiny_head_dim,
                tiny_copy_acc=tiny_acc,
                grown_copy_acc=grown_acc, grow_noise=noise)
    return task, info


def logits(model, ids):
    pos = torch.arange(ids.shape[1], device=ids.device)[None].expand_as(ids)
    h = model.model(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=pos,
                    use_cache=False).last_hidden_state
    return model.lm_head(h).float()


def check():
    """Grows a random float32 tiny model into a wider, deeper one (both copy_tiny) and compares logits."""
    import copy_tiny
    torch.manual_seed(0)

    def tiny(vocab, d, layers, heads, kv, inter, head_dim=64):
        m = torch.nn.Module()
        m.model = copy_tiny.Body(vocab, d, layers, heads, kv, head_dim, inter)
        m.lm_head = torch.nn.Linear(d, vocab, bias=False)
        m.lm_head.weight = m.model.embed_tokens.weight
        for name, p in m.named_parameters():
            torch.nn.init.normal_(p, std=0.02 if p.dim() == 2 else 0.1)
            if "norm" in name:
                p.data.add_(1.0)
        # RMSNorm's eps (1e-6) is added to a mean over more dimensions in the wider model: with HF's 0.02
        # embeddings that alone moves logits by ~0.1%; trained embeddings are larger, as here.
        m.model.embed_tokens.weight.data.mul_(25)
        return m

    src, dst = tiny(1000, 128, 2, 4, 2, 512), tiny(3000, 448, 5, 7, 1 + 2, 1536)
    try:
        grow(src, dst)
        raise SystemExit("grow accepted a target whose KV groups (7 / 3 heads) do not divide")
    except ValueError:
        pass
    try:
        grow(src, tiny(3000, 448, 5, 3, 3, 1536))
        raise SystemExit("grow accepted a target with smaller KV groups (1) than the source's (2)")
    except ValueError:
        pass
    try:
        grow(src, tiny(3000, 448, 5, 9, 3, 1536, head_dim=96))
        raise SystemExit("grow accepted a head size (96) that is not a multiple of the source's (64)")
    except ValueError:
        pass
    ids = torch.randint(0, 1000, (2, 300))
    with torch.no_grad():
        a = logits(src, ids)
    for head_dim in (64, 128):  # the same head size, and twice it (RoPE pairs and the softmax scale remapped)
        dst = tiny(3000, 448, 5, 9, 3, 1536, head_dim)  # groups of 3 >= the source's 2
        with torch.no_grad():
            grow(src, dst)
            b = logits(dst, ids)
        err = float((a - b[..., :1000]).abs().max() / a.abs().max())
        extra = float(b[..., 1000:].abs().max())
        print(f"grown logits (head size 64 -> {head_dim}): max error {err:.2e} of the largest logit; rows beyond "
              f"the source vocabulary: {extra}")
        sys.stdout.flush()
        if err > 1e-4 or extra != 0:
            raise SystemExit("growth did not preserve the function")
    with torch.no_grad():
        grow(src, dst, noise=1e-3)
        c = logits(dst, ids)
    print(f"with noise 1e-3: max change {float((a - c[..., :1000]).abs().max() / a.abs().max()):.3f} of the largest logit")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    if ap.parse_args().check:
        check()
