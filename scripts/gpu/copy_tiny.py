#!/usr/bin/env python3
"""The copy task (copy_task.py) on a tiny Qwen2-like model, on the CPU where there is no GPU: how many steps
the task's loss takes to leave its plateau (ln of the span vocabulary) and start copying, at a learning rate
and span vocabulary, before paying GPU time at the real shapes. Pure torch (no transformers): RMSNorm,
RoPE (theta 1e6), grouped-query attention with q/k/v biases, SwiGLU, tied embeddings, HF's N(0, 0.02) init,
bf16 weights; only copy_task.train's first (128-token) phase runs unless the accuracy gets there (the attention
is a plain masked softmax, slow at 2048 tokens).

    python3 scripts/gpu/copy_tiny.py --steps 500 --lr 1e-3        # dev box, 2 cores: about 1.2 s a step
"""
import argparse, math, types

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


class Block(nn.Module):
    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, d // heads
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        self.q, self.k, self.v = (nn.Linear(d, n * self.hd) for n in (heads, kv_heads, kv_heads))
        self.o = nn.Linear(d, d, bias=False)
        self.gate, self.up, self.down = nn.Linear(d, 4 * d, bias=False), nn.Linear(d, 4 * d, bias=False), \
            nn.Linear(4 * d, d, bias=False)

    def rope(self, x, pos):
        inv = 1.0 / (1e6 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        ang = pos[:, None, :, None].float() * inv
        c, s = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        x1, x2 = x[..., :self.hd // 2], x[..., self.hd // 2:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)

    def forward(self, x, pos):
        b, n, _ = x.shape
        h = self.n1(x)
        q, k, v = (p(h).view(b, n, m, self.hd).transpose(1, 2)
                   for p, m in ((self.q, self.heads), (self.k, self.kv_heads), (self.v, self.kv_heads)))
        q, k = self.rope(q, pos), self.rope(k, pos)
        g = self.heads // self.kv_heads
        k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        a = (q @ k.transpose(-1, -2)).float() / math.sqrt(self.hd)
        a = a.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf")).softmax(-1).to(x.dtype)
        x = x + self.o((a @ v).transpose(1, 2).reshape(b, n, -1))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Body(nn.Module):
    """What copy_task.train calls as `model.model`."""

    def __init__(self, vocab, d, layers, heads, kv_heads):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d, heads, kv_heads) for _ in range(layers))
        self.norm = RMSNorm(d)

    def forward(self, input_ids, attention_mask, position_ids, use_cache):
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, position_ids)
        return types.SimpleNamespace(last_hidden_state=self.norm(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=16384, help="span + filler ids")
    ap.add_argument("--span-vocab", type=int, default=copy_task.SPAN_VOCAB)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--tokens", type=int, default=2048, help="tokens a step")
    a = ap.parse_args()
    if not 0 < a.span_vocab < a.vocab:
        ap.error("--span-vocab must be below --vocab")
    if not torch.cuda.is_available():  # train() moves its batches with .cuda(): keep them here
        torch.Tensor.cuda = lambda self: self
        torch.cuda.empty_cache = lambda: None
    copy_task.SPAN_VOCAB = a.span_vocab
    torch.manual_seed(0)
    model = nn.Module()
    model.model = Body(a.vocab, a.dim, a.layers, 4, 2)
    model.lm_head = nn.Linear(a.dim, a.vocab, bias=False)
    model.lm_head.weight = model.model.embed_tokens.weight
    for name, p in model.named_parameters():
        if p.dim() == 2:
            nn.init.normal_(p, std=0.02)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    model.to(torch.bfloat16)
    if torch.cuda.is_available():
        model.cuda()
    task = copy_task.CopyTask(types.SimpleNamespace(vocab_size=a.vocab, max_position_embeddings=32768))
    print(copy_task.train(model, task, a.steps, tokens=a.tokens, lr=a.lr, log=lambda s: print(s, flush=True)))


if __name__ == "__main__":
    main()
