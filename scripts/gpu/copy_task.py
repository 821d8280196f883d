"""The copy task of scripts/gpu/checkpoints.py (kind 'copy'): a checkpoint whose next token depends on attention
at a distance, for comparing tpserve's prefill and decode attention with HF (scripts/gpu/copy_compare.py).

Sequences are random filler tokens in which spans of 16-64 tokens appear twice; inside a second copy the next
token is the one that followed the current token in the first copy, which only attention can fetch (an
induction head: match the current token against earlier tokens' predecessors, copy the match's token).
Span tokens come from a random 8192-id subset of the vocabulary and the filler from the other ids below 150000,
and a sequence's spans never share a token: a span token occurs only in its two copies, so the copy source is
unambiguous at any distance and a model that copies is confident (peaked logits, which top-1 comparisons need).

Training (train below): first 128-token sequences with one span, then 2048-token sequences with 10 spans in
random order; AdamW in bf16 as checkpoints.train. The loss is on the second copies only (from their second
token): the filler is uniform noise that nothing can predict, so its loss would add only a constant and
gradient noise and would outweigh the copy positions, and a second copy's first token follows filler, so it is
unpredictable too. Half of each long batch gets position ids that jump before every span occurrence (up to
max_position_embeddings in all), so that training on 2k-token sequences still shows the model the RoPE phases
of the 1k-30k token distances the prompts use; the other half counts positions plainly, as prompts do. The
explicit attention_mask of ones keeps transformers from reading the jumps as the starts of packed separate
sequences (it looks for them only without a mask).
"""
import time

import torch
import torch.nn.functional as F

SPAN_VOCAB = 8192
SPAN_LEN = (16, 64)  # inclusive


class CopyTask:
    """Vocabularies and a seeded generator for training batches and evaluation prompts."""

    def __init__(self, cfg, seed=2, span_vocab=None):
        g = torch.Generator().manual_seed(seed)
        top = min(cfg.vocab_size, 150000)
        perm = torch.randperm(top, generator=g)
        self.n_span = span_vocab or SPAN_VOCAB
        self.span_vocab, self.filler_vocab = perm[:self.n_span], perm[self.n_span:]
        self.max_pos = cfg.max_position_embeddings
        self.gen = g

    def _randint(self, lo, hi, shape=()):  # lo..hi inclusive
        return torch.randint(lo, hi + 1, shape, generator=self.gen)

    def filler(self, n):
        return self.filler_vocab[torch.randint(0, len(self.filler_vocab), (n,), generator=self.gen)]

    def spans(self, lengths):
        """Spans of the given lengths; no token occurs twice among them."""
        ids = self.span_vocab[torch.randperm(self.n_span, generator=self.gen)[:sum(lengths)]]
        return list(ids.split(lengths))

    def sequence(self, length, n_spans, jumps, span_len=SPAN_LEN):
        """(tokens, is_target, positions) of one training sequence of `length` tokens."""
        lens = self._randint(*span_len, (n_spans,)).tolist()
        spans = self.spans(lens)
        order = torch.arange(n_spans).repeat(2)[torch.randperm(2 * n_spans, generator=self.gen)].tolist()
        fill = length - 2 * sum(lens)
        if fill < 0:
            raise ValueError(f"{n_spans} spans of up to {span_len[1]} tokens twice do not fit {length} tokens")
        cuts = torch.sort(self._randint(0, fill, (2 * n_spans,))).values.tolist()
        pieces = [b - a for a, b in zip([0] + cuts, cuts + [fill])]
        jump = [0] * (2 * n_spans)
        if jumps:  # the extra positions, split at random among the span occurrences
            extra = self._randint(0, self.max_pos - length)
            c = torch.sort(self._randint(0, int(extra), (2 * n_spans - 1,))).values.tolist()
            jump = [b - a for a, b in zip([0] + c, c + [int(extra)])]
        toks, tgt = [self.filler(pieces[0])], [torch.zeros(pieces[0], dtype=torch.bool)]
        step = [torch.ones(pieces[0], dtype=torch.long)]
        seen = set()
        for k, i in enumerate(order):
            n = lens[i]
            toks += [spans[i], self.filler(pieces[k + 1])]
            t = torch.zeros(n, dtype=torch.bool)
            if i in seen:
                t[1:] = True
            seen.add(i)
            tgt += [t, torch.zeros(pieces[k + 1], dtype=torch.bool)]
            s = torch.ones(n, dtype=torch.long)
            s[0] += jump[k]
            step += [s, torch.ones(pieces[k + 1], dtype=torch.long)]
        return torch.cat(toks), torch.cat(tgt), torch.cat(step).cumsum(0) - 1

    def batch(self, n, length, n_spans, jumps=True, span_len=SPAN_LEN):
        """n sequences stacked; with `jumps`, the odd ones have position jumps."""
        rows = [self.sequence(length, n_spans, jumps=jumps and i % 2 == 1, span_len=span_len) for i in range(n)]
        return tuple(torch.stack(x) for x in zip(*rows))

    def prompt(self, length, distance, span_len=SPAN_LEN[1]):
        """(ids, span): `length` tokens of filler ending with a span's second copy, its first copy starting
        `distance` tokens before the second's start."""
        s2 = length - span_len
        s1 = s2 - distance
        if s1 < 0 or distance < span_len:
            raise ValueError(f"no room for distance {distance} in {length} tokens")
        span = self.spans([span_len])[0]
        ids = self.filler(length)
        ids[s1:s1 + span_len] = span
        ids[s2:] = span
        return ids, span

    def prompts(self, length, n, span_len=SPAN_LEN[1], near=1000):
        """n prompts of `length` tokens, the distances spread evenly from `near` to as far as fits."""
        far = length - span_len - 16
        near = min(near, far)
        out = []
        for i in range(n):
            d = int(near + (far - near) * i / max(n - 1, 1))
            ids, span = self.prompt(length, d, span_len)
            out.append({"ids": ids, "span": span, "distance": d})
        return out


# Training recipes: phases of (sequence length, spans per sequence, span lengths, position jumps, the copy
# accuracy (mean of 5 steps) that moves on to the next phase). H200, 2026-12-01 (scripts/gpu/copy_sweep.py,
# docs/performance.md): a 4-layer model copies at 2k and 8k tokens after ~600 steps of "base"; "multi" (several
# spans per short sequence) learns more slowly, and the others did not learn in the time given: "direct" (no
# short phase), "prev" variants (layer 0 starts as a previous-token head, init_prev_token_head), "zres"
# variants (residual branches zeroed at the start, zero_residual_branches). Models of 12 or more layers
# learned with none of them, hence copy_grow.py, whose fine-tuning uses "long".
RECIPES = {
    "base": dict(phases=[(128, 1, (16, 64), False, 0.9), (2048, 10, (16, 64), True, None)]),
    "multi": dict(phases=[(256, 3, (8, 32), False, 0.9), (2048, 10, (16, 64), True, None)]),
    "direct": dict(phases=[(1024, 6, (16, 64), True, None)]),
    "prev": dict(phases=[(256, 3, (8, 32), False, 0.9), (2048, 10, (16, 64), True, None)], prev_head=True),
    "prev_direct": dict(phases=[(1024, 6, (16, 64), True, None)], prev_head=True),
    "base_zres": dict(phases=[(128, 1, (16, 64), False, 0.9), (2048, 10, (16, 64), True, None)], zero_res=True),
    "multi_zres": dict(phases=[(256, 3, (8, 32), False, 0.9), (2048, 10, (16, 64), True, None)], zero_res=True),
    # The fine-tuning of a grown copier: it copies already, so only the long phase.
    "long": dict(phases=[(2048, 10, (16, 64), True, None)]),
    # "long", then at least 100 steps on 8k-token sequences: the 0.5B grown copier fine-tuned on 2k tokens alone
    # copied 100% at 2k/8k but 95.6% at 32k, and its own greedy copies there only 30% (near ties: greedy 2/3).
    "long8k": dict(phases=[(2048, 10, (16, 64), True, 0.99), (8192, 20, (16, 64), True, None)], min_last_steps=100),
}


def zero_residual_branches(model):
    """Zeroes every layer's attention output and MLP down projection, so that each block starts as the
    identity (as Fixup / ReZero-style initialisations do): the gradient first reaches those projections, then
    the rest of their blocks, and depth does not dilute it at the start."""
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()


def init_prev_token_head(model, scale=6.0):
    """Makes layer 0's first query head attend to the previous position, whatever the tokens: its query and the
    first KV head's key become constants (weights zeroed, biases set) whose RoPE pairs are out of phase by one
    position's angle, so q.k = scale^2 * sum_i cos(theta_i * (m - n - 1)), largest at m - n = 1. The value and
    output projections stay random: training decides what the head moves. Qwen2's q/k biases make this
    expressible; the rotate-half pairing (i, i + d/2) is HF's and copy_tiny's."""
    attn = model.model.layers[0].self_attn
    cfg = getattr(model, "config", None)
    cfg_theta = getattr(cfg, "rope_theta", None) or (getattr(cfg, "rope_parameters", None) or {}).get(
        "rope_theta", 1e6)
    d = attn.head_dim
    half = d // 2
    theta = cfg_theta ** (-torch.arange(half, dtype=torch.float64) * 2 / d)
    with torch.no_grad():
        for proj, vec in ((attn.q_proj, torch.cat([theta.cos(), -theta.sin()])),
                          (attn.k_proj, torch.cat([torch.ones(half, dtype=torch.float64),
                                                   torch.zeros(half, dtype=torch.float64)]))):
            proj.weight[:d].zero_()
            proj.bias[:d] = (scale * vec).to(proj.bias.dtype)


def copy_accuracy(model, task, length, n=4, span_len=SPAN_LEN[1]):
    """Teacher-forced copy accuracy on n evaluation prompts of `length` tokens (plain positions, distances from
    1k, or a quarter of the length when shorter, to the whole prompt): top-1 over the second copy's positions
    after its first token."""
    model.eval()
    hits = []
    with torch.no_grad():
        for p in task.prompts(length, n, span_len, near=min(1000, length // 4)):
            ids = p["ids"][None].cuda()
            h = model.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                            position_ids=torch.arange(length, device=ids.device)[None],
                            use_cache=False).last_hidden_state
            pred = model.lm_head(h[0, -span_len:-1]).argmax(-1).cpu()
            hits.append((pred == p["span"][1:]).float().mean())
    model.train()
    return float(torch.stack(hits).mean())


def train(model, task, steps, tokens=None, lr=None, log=print, max_s=None, stop_acc=0.998, recipe="base"):
    """Fine-tunes `model` in place to copy, `tokens` tokens a step (default 16k for the small shapes, 4k for the
    large: time per step), at learning rate `lr` (default 1e-3 for the small shapes, 4e-4 for the large), by
    one of RECIPES: phases of sequences with spans copied, moving on when the copy accuracy averages the
    phase's bar over 5 steps (or the phase's share of `max_s` has passed). Stops after `steps` steps, after
    `max_s` seconds, or once the last phase's accuracy averages `stop_acc` over 10 steps (and it has run the
    recipe's `min_last_steps`, if any). Returns what it did (a dict)."""
    # Why short phases first: an induction head needs two heads that are useless alone (one moves the previous
    # token into each position, the other matches on it), and at the start attention is spread evenly over
    # all keys, so the gradient towards them shrinks with the sequence length. (A CPU run of copy_tiny at
    # 2k tokens a step did not carry its short phase's copying into the long phase; on the GPU at 8k tokens a
    # step it carried within ~150 steps: copy_sweep's "base" row.)
    # H200, 2026-12-01, AdamW on the bf16 weights, recipe "base": the 0.5B shape sat at the span vocabulary's
    # entropy (loss 9.04-9.09, ln 8192 = 9.01, copy accuracy 0) for 438 steps on 2048-token sequences at lr
    # 3e-4, and for 104 short + 82 long steps at lr 1e-3; the 7B shape for 109 + 73 steps at lr 4e-4.
    spec = RECIPES[recipe]
    phases = spec["phases"]
    if spec.get("prev_head"):
        init_prev_token_head(model)
    if spec.get("zero_res"):
        zero_residual_branches(model)
    n_params = sum(p.numel() for p in model.parameters())
    if tokens is None:
        tokens = 16384 if n_params < 2e9 else 4096
    if lr is None:
        lr = 1e-3 if n_params < 2e9 else 4e-4
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.95), foreach=False)
    t0, accs, why, phase, switched = time.time(), [], "steps", 0, []
    loss_v = acc = None
    for step in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lr * min(1.0, (step + 1) / 20)
        length, n_spans, span_len, jumps, bar = phases[phase]
        ids, tgt, pos = (x.cuda() for x in task.batch(max(1, tokens // length), length, n_spans, jumps, span_len))
        h = model.model(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=pos,
                        use_cache=False).last_hidden_state
        src = tgt[:, 1:]  # the hidden state at t-1 predicts token t
        logits = model.lm_head(h[:, :-1][src]).float()
        y = ids[:, 1:][src]
        loss = F.cross_entropy(logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_v, acc = float(loss), float((logits.argmax(-1) == y).float().mean())
        accs.append(acc)
        if step % 25 == 0 or step == steps - 1:
            log(f"copy train step {step} (len {length}): loss {loss_v:.4f} acc {acc:.4f} ({time.time() - t0:.0f} s)")
        elapsed = time.time() - t0
        last = phase == len(phases) - 1
        share = 0.6 * (phase + 1) / max(1, len(phases) - 1)  # of max_s, for the phases before the last
        if not last and ((len(accs) >= 5 and sum(accs[-5:]) / 5 >= bar) or
                         (max_s is not None and elapsed > share * max_s)):
            phase, accs = phase + 1, []
            switched.append(step + 1)
            log(f"copy train: phase {phase} ({phases[phase][0]} tokens) from step {step + 1}: acc {acc:.4f} "
                f"({elapsed:.0f} s)")
        elif (last and len(accs) >= max(10, spec.get("min_last_steps", 0)) and
              sum(accs[-10:]) / 10 >= stop_acc):
            why = "copies"
            break
        if max_s is not None and elapsed > max_s:
            why = "time"
            break
    log(f"copy train stopped ({why}) at step {step}: loss {loss_v:.4f} acc {acc:.4f} ({time.time() - t0:.0f} s)")
    del opt
    model.zero_grad(set_to_none=True)
    model.eval()
    torch.cuda.empty_cache()
    return {"train_recipe": recipe, "train_steps": step + 1, "train_phase_steps": switched, "train_stop": why,
            "train_final_loss": loss_v, "train_final_acc": acc, "train_tokens_per_step": tokens, "train_lr": lr}
