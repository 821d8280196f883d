#!/usr/bin/env python3
"""The copy task (copy_task.py) on a tiny Qwen2-like model, on the CPU where there is no GPU: how many steps
the task's loss takes to leave its plateau (ln of the span vocabulary) and start copying, at a learning rate
and span vocabulary, before paying GPU time at the real shapes. Pure torch (no transformers): RMSNorm,
RoPE (theta 1e6), grouped-query attention with q/k/v biases, SwiGLU, tied embeddings, HF's N(0, 0.02) init,
bf16 weights; only copy_task.train's first (128-token) phase runs unless the accuracy gets there (the attention
is a plain masked softmax, slow at 2048 tokens).

    python3 scripts/gpu/copy_tiny.py --steps 500 --lr 1e-3        # dev box, 2 cores: about 1.2 s a step
"""
import argparse, json, math, types

import torch
import torch.nn as nn
import torch.nn.functional as F

import copy_task


class RMSNorm(nn.Module):  # torch.nn.RMSNorm is 2.4+; the dev box's Debian torch is 1.13
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * self.weight


class Attention(nn.Module):
    """Named as HF's Qwen2 attention (q_proj..o_proj, head_dim), so copy_task.init_prev_token_head applies."""

    def __init__(self, d, heads, kv_heads, head_dim):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d, n * head_dim) for n in (heads, kv_heads, kv_heads))
        self.o_proj = nn.Linear(heads * head_dim, d, bias=False)

    def rope(self, x, pos):
        hd = self.head_dim
        inv = 1.0 / (1e6 ** (torch.arange(0, hd, 2).float().to(x.device) / hd))
        ang = pos[:, None, :, None].float() * inv
        c, s = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)

    def forward(self, h, pos):
        b, n, _ = h.shape
        q, k, v = (p(h).view(b, n, m, self.head_dim).transpose(1, 2)
                   for p, m in ((self.q_proj, self.heads), (self.k_proj, self.kv_heads), (self.v_proj, self.kv_heads)))
        q, k = self.rope(q, pos), self.rope(k, pos)
        g = self.heads // self.kv_heads
        k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        if hasattr(F, "scaled_dot_product_attention"):  # torch 2 (the GPU machine): long sequences fit
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            a = (q @ k.transpose(-1, -2)).float() / math.sqrt(self.head_dim)
            mask = torch.ones(n, n, dtype=torch.bool, device=h.device).triu(1)
            o = a.masked_fill(mask, float("-inf")).softmax(-1).to(h.dtype) @ v
        return self.o_proj(o.transpose(1, 2).reshape(b, n, -1))


class Mlp(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(d, inter, bias=False), nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, h):
        return self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Block(nn.Module):
    """Parameter names as HF's Qwen2DecoderLayer, so state dicts move between the two (copy_grow.py)."""

    def __init__(self, d, heads, kv_heads, head_dim, inter=None):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(d), RMSNorm(d)
        self.self_attn = Attention(d, heads, kv_heads, head_dim)
        self.mlp = Mlp(d, inter or 4 * d)

    def forward(self, x, pos):
        x = x + self.self_attn(self.input_layernorm(x), pos)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    """What copy_task.train calls as `model.model`."""

    def __init__(self, vocab, d, layers, heads, kv_heads, head_dim, inter=None):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d, heads, kv_heads, head_dim, inter) for _ in range(layers))
        self.norm = RMSNorm(d)

    def forward(self, input_ids, attention_mask, position_ids, use_cache):
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, position_ids)
        return types.SimpleNamespace(last_hidden_state=self.norm(x))


def make(vocab, dim, layers, heads, kv_heads, head_dim, inter=None):
    """A tiny Qwen2-like model with tied embeddings, HF's N(0, 0.02) init, in bf16 (on the GPU if there is one)."""
    model = nn.Module()
    model.model = Body(vocab, dim, layers, heads, kv_heads, head_dim, inter)
    model.lm_head = nn.Linear(dim, vocab, bias=False)
    model.lm_head.weight = model.model.embed_tokens.weight
    for name, p in model.named_parameters():
        if p.dim() == 2:
            nn.init.normal_(p, std=0.02)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    model.to(torch.bfloat16)
    return model.cuda() if torch.cuda.is_available() else model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=None, help="default: dim / heads")
    ap.add_argument("--vocab", type=int, default=16384, help="span + filler ids")
    ap.add_argument("--span-vocab", type=int, default=copy_task.SPAN_VOCAB)
    ap.add_argument("--recipe", default="base", choices=sorted(copy_task.RECIPES))
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--max-s", type=float, default=None, help="stop training after this many seconds")
    ap.add_argument("--tokens", type=int, default=2048, help="tokens a step")
    ap.add_argument("--eval-lengths", default="", help="after training, copy accuracy on prompts of these lengths")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not 0 < a.span_vocab < a.vocab:
        ap.error("--span-vocab must be below --vocab")
    if not torch.cuda.is_available():  # train() moves its batches with .cuda(): keep them here
        torch.Tensor.cuda = lambda self: self
        torch.cuda.empty_cache = lambda: None
    torch.manual_seed(a.seed)
    model = make(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.head_dim or a.dim // a.heads)
    task = copy_task.CopyTask(types.SimpleNamespace(vocab_size=a.vocab, max_position_embeddings=32768),
                              seed=a.seed + 2, span_vocab=a.span_vocab)
    res = copy_task.train(model, task, a.steps, tokens=a.tokens, lr=a.lr, max_s=a.max_s, recipe=a.recipe,
                          log=lambda s: print(s, flush=True))
    for n in (int(x) for x in a.eval_lengths.split(",") if x):
        res[f"eval_{n}"] = copy_accuracy_or_none(model, task, n)
    res.update(lr=a.lr, span_vocab=a.span_vocab, layers=a.layers, dim=a.dim)
    print("RESULT " + json.dumps(res), flush=True)


def copy_accuracy_or_none(model, task, n):
    try:
        return round(copy_task.copy_accuracy(model, task, n), 4)
    except RuntimeError as e:  # out of memory on the CPU path's full attention matrix
        print(f"eval at {n} tokens failed: {e}", flush=True)
        return None


if __name__ == "__main__":
    main()
