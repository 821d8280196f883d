"""The reference quantizer: Qwen2 linear layers into the AWQ, GPTQ (v1) and FP8 checkpoint layouts, written from
the formats' documented layouts (docs/quantization.md; make_quant_fixtures.py's docstring lists them). Each
function checks its packing by unpacking with an independent unpacker and comparing the dequantization bit for bit.

Used by make_quant_fixtures.py (the tiny fixtures, on the CPU) and tp_check.py (trained checkpoints at real
shapes, on the GPU: every tensor is made on the device of the weight it quantizes).
"""
import torch

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


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
    out = torch.zeros(rows, cols // 8, dtype=torch.int64, device=q.device)
    for i, col in enumerate(AWQ_ORDER):
        out |= q[:, :, col] << (4 * i)
    return to_i32(out)


def awq_unpack(p):
    """Inverse of awq_pack, written the other way round: nibble i of word c is column 8c + AWQ_ORDER[i]."""
    w = words(p)
    rows, n = w.shape
    out = torch.zeros(rows, n * 8, dtype=torch.int64, device=p.device)
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
    out = torch.zeros(rows // k, cols, dtype=torch.int64, device=q.device)
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


def gptq_quantize(W, bits, g, desc_act, perm=None):
    """`perm`: the act order to use with desc_act (layers that share an input share it, as AutoGPTQ's do);
    None: this layer's own (column norms)."""
    out, inp = W.shape
    dev = W.device
    g = inp if g == -1 else g
    groups = inp // g
    maxq = (1 << bits) - 1
    zero = (maxq + 1) // 2
    if desc_act:
        # Activation order: GPTQ quantizes inputs in decreasing importance; the column norm stands in for the
        # Hessian diagonal. Groups are consecutive in that order, so g_idx is not monotonic.
        if perm is None:
            perm = torch.argsort(W.norm(dim=0), descending=True)
        g_idx = torch.empty(inp, dtype=torch.int64, device=dev)
        g_idx[perm] = torch.arange(inp, device=dev) // g
    else:
        g_idx = torch.arange(inp, device=dev) // g
    s = torch.empty(groups, out, device=dev)
    for gi in range(groups):
        amax = W[:, g_idx == gi].abs().amax(1)
        s[gi] = torch.where(amax > 0, 2 * amax / maxq, torch.ones_like(amax))
    s = s.half().float()
    si = s[g_idx]  # [in, out]
    q = (torch.round(W.t() / si) + zero).clamp(0, maxq).to(torch.int64)  # [in, out]
    deq = ((q.float() - zero) * si).t().contiguous()
    z = torch.full((groups, out), zero - 1, dtype=torch.int64, device=dev)  # v1 checkpoints store zero - 1
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


def quantize(name, cfg, W, perm=None):
    """Quantizes W [out, in] (float32, any device) per `cfg` (a quantization_config); returns (tensors, deq).
    `name` is the layer's path inside the decoder layer ("mlp.down_proj")."""
    m = cfg["quant_method"]
    if m == "awq":
        return awq_quantize(W, cfg["group_size"])
    if m == "gptq":
        return gptq_quantize(W, cfg["bits"], cfg["group_size"], cfg["desc_act"], perm)
    return fp8_quantize(W, per_channel=name.startswith("mlp."))
