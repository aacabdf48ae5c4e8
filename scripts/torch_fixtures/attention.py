"""Attention: F.scaled_dot_product_attention as an op (boolean and additive masks, is_causal,
scale, a fully masked row, broadcast batches), and as custom cases nn.MultiheadAttention
(self and cross attention, batch_first or not, key_padding_mask, attn_mask boolean and
float, both at once, weights averaged or per head, no bias, unbatched),
nn.TransformerEncoderLayer (post-norm and norm_first, relu and gelu, masks) and
nn.TransformerEncoder with a final norm, each loading the PyTorch module's state_dict by
name ("state.m.*"), in training mode with dropout 0 (PyTorch's inference fast path is
another kernel), reproducing outputs and every gradient; and the sinusoidal positional
encoding. Boolean masks are stored as 0/1 integers (u32 in Cinder)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

TOL = dict(atol=2e-5, rtol=2e-4)


def sdpa_cases(fam):
    def case(name, q, k, v, mask=None, **kw):
        inputs = {"q": q, "k": k, "v": v}
        args = dict(kw)
        if mask is not None:
            inputs["mask"] = mask.to(torch.int64) if mask.dtype == torch.bool else mask
            args["bool_mask"] = mask.dtype == torch.bool

        def fn(q, k, v, mask=None):
            m = mask
            if m is not None and args.get("bool_mask"):
                m = m.bool()
            return F.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw)

        fam.case(name, "sdpa", inputs, fn, args=args, grad=["q", "k", "v"], **TOL)

    r = fam.randn
    case("sdpa_plain", r(2, 3, 4, 5), r(2, 3, 6, 5), r(2, 3, 6, 7))
    keep = torch.rand(4, 6, generator=fam.gen) > 0.3
    keep[:, 0] = True
    case("sdpa_bool_mask", r(2, 3, 4, 5), r(2, 3, 6, 5), r(2, 3, 6, 7), mask=keep)
    row_masked = keep.clone()
    row_masked[2] = False
    case("sdpa_fully_masked_row", r(1, 2, 4, 5), r(1, 2, 6, 5), r(1, 2, 6, 3), mask=row_masked)
    add = r(2, 1, 4, 6)
    add[0, 0, 1, 2] = float("-inf")
    case("sdpa_additive_mask_broadcast_heads", r(2, 3, 4, 5), r(2, 3, 6, 5), r(2, 3, 6, 5),
         mask=add)
    case("sdpa_causal_square", r(2, 2, 5, 4), r(2, 2, 5, 4), r(2, 2, 5, 4), is_causal=True)
    case("sdpa_causal_rectangular", r(1, 2, 3, 4), r(1, 2, 6, 4), r(1, 2, 6, 4), is_causal=True)
    case("sdpa_scale", r(2, 4, 3), r(2, 5, 3), r(2, 5, 2), scale=0.3)
    case("sdpa_shared_kv_batch", r(2, 3, 4, 5), r(3, 6, 5), r(3, 6, 5))
    pad = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    pad[1, ..., 4:] = False
    case("sdpa_key_padding_shape", r(2, 3, 4, 5), r(2, 3, 6, 5), r(2, 3, 6, 5), mask=pad)


def _state(tensors, module):
    for k, v in module.state_dict().items():
        tensors[f"state.m.{k}"] = v.clone()


def _grads(tensors, module):
    for k, p in module.named_parameters():
        tensors[f"expect.grad.{k}"] = p.grad


def _randomize_biases(module, fam):
    # PyTorch starts these biases at zero; random ones make their gradients count.
    with torch.no_grad():
        for k, p in module.named_parameters():
            if "bias" in k:
                p.copy_(fam.randn(*p.shape, scale=0.2))


def mha_case(fam, name, E, H, L, S, B, batch_first=False, cross=False, bias=True,
             kpm=False, attn_mask=None, need_weights=False, average=True, unbatched=False,
             is_causal=False):
    torch.manual_seed(len(fam.meta) + 7)
    m = nn.MultiheadAttention(E, H, bias=bias, batch_first=batch_first)
    m.train()
    _randomize_biases(m, fam)

    def shape(T):
        if unbatched:
            return (T, E)
        return (B, T, E) if batch_first else (T, B, E)

    q = fam.randn(*shape(L)).requires_grad_(True)
    tensors = {}
    if cross:
        k = fam.randn(*shape(S)).requires_grad_(True)
        v = fam.randn(*shape(S)).requires_grad_(True)
    else:
        k = v = q
        S = L
    kp = None
    if kpm:
        kp = torch.zeros((S,) if unbatched else (B, S), dtype=torch.bool)
        if unbatched:
            kp[S - 1] = True
        else:
            kp[-1, S - 2:] = True
        tensors["key_padding_mask"] = kp.to(torch.int64)
    am = None
    if attn_mask == "bool":
        am = torch.rand(L, S, generator=fam.gen) > 0.7
        am[:, 0] = False
        tensors["attn_mask"] = am.to(torch.int64)
    elif attn_mask == "float":
        am = fam.randn(L, S)
        tensors["attn_mask"] = am
    elif attn_mask == "causal":
        am = torch.triu(torch.ones(L, S, dtype=torch.bool), diagonal=1)
    out, w = m(q, k, v, key_padding_mask=kp, attn_mask=am, need_weights=need_weights,
               average_attn_weights=average, is_causal=is_causal)
    cot = fam.randn(*out.shape)
    loss = (out * cot).sum()
    if need_weights:
        cot_w = fam.randn(*w.shape)
        loss = loss + (w * cot_w).sum()
        tensors.update({"cot_w": cot_w, "expect.weights": w.detach()})
    loss.backward()
    _state(tensors, m)
    tensors.update({"q": q.detach(), "cot": cot, "expect.out": out.detach(),
                    "expect.grad.q": q.grad})
    if cross:
        tensors.update({"k": k.detach(), "v": v.detach(), "expect.grad.k": k.grad,
                        "expect.grad.v": v.grad})
    _grads(tensors, m)
    args = {"embed_dim": E, "num_heads": H, "batch_first": batch_first, "bias": bias,
            "cross": cross, "need_weights": need_weights, "average_attn_weights": average,
            "is_causal": is_causal}
    fam.custom(name, "MultiheadAttention", tensors, args=args, **TOL)


def encoder_case(fam, name, E, H, T, B, ff=16, layers=None, final_norm=False,
                 activation="relu", norm_first=False, batch_first=False, kpm=False,
                 causal=False):
    torch.manual_seed(len(fam.meta) + 11)
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=ff, dropout=0.0,
                                       activation=activation, batch_first=batch_first,
                                       norm_first=norm_first)
    if layers is None:
        m = layer
    else:
        m = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(E) if final_norm else None,
                                  enable_nested_tensor=False)
    m.train()
    _randomize_biases(m, fam)
    with torch.no_grad():
        for k, p in m.named_parameters():
            if "norm" in k and "weight" in k:
                p.copy_(fam.uniform(*p.shape, lo=0.5, hi=1.5))
    x = fam.randn(*((B, T, E) if batch_first else (T, B, E))).requires_grad_(True)
    tensors = {}
    kp = None
    if kpm:
        kp = torch.zeros(B, T, dtype=torch.bool)
        kp[0, T - 2:] = True
        tensors["src_key_padding_mask"] = kp.to(torch.int64)
    mask = nn.Transformer.generate_square_subsequent_mask(T) if causal else None
    if layers is None:
        out = m(x, src_mask=mask, src_key_padding_mask=kp, is_causal=causal)
    else:
        out = m(x, mask=mask, src_key_padding_mask=kp, is_causal=causal)
    cot = fam.randn(*out.shape)
    (out * cot).sum().backward()
    _state(tensors, m)
    tensors.update({"x": x.detach(), "cot": cot, "expect.out": out.detach(),
                    "expect.grad.x": x.grad})
    _grads(tensors, m)
    args = {"d_model": E, "nhead": H, "dim_feedforward": ff, "activation": activation,
            "norm_first": norm_first, "batch_first": batch_first, "causal": causal}
    if layers is not None:
        args.update({"num_layers": layers, "final_norm": final_norm})
    fam.custom(name, "TransformerEncoder" if layers else "TransformerEncoderLayer", tensors,
               args=args, atol=5e-5, rtol=5e-4)


def positions_cases(fam):
    for L, D in [(7, 6), (50, 16)]:
        pos = torch.arange(L, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, D, 2, dtype=torch.float32) * (-math.log(10000.0) / D))
        pe = torch.zeros(L, D)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        fam.custom(f"sinusoidal_{L}x{D}", "sinusoidal_positions", {"expect.pe": pe},
                   args={"len": L, "dim": D}, atol=2e-5, rtol=1e-4)


def build(fam):
    sdpa_cases(fam)
    mha_case(fam, "mha_self", 8, 2, 5, 5, 3)
    mha_case(fam, "mha_self_batch_first_weights", 8, 4, 4, 4, 2, batch_first=True,
             need_weights=True)
    mha_case(fam, "mha_cross_per_head_weights", 6, 3, 3, 5, 2, cross=True, need_weights=True,
             average=False)
    mha_case(fam, "mha_key_padding", 8, 2, 5, 5, 3, kpm=True)
    mha_case(fam, "mha_bool_attn_mask", 8, 2, 4, 4, 2, attn_mask="bool", batch_first=True)
    mha_case(fam, "mha_float_mask_and_padding", 8, 2, 4, 6, 2, cross=True, kpm=True,
             attn_mask="float", need_weights=True)
    mha_case(fam, "mha_causal", 8, 2, 5, 5, 2, attn_mask="causal", is_causal=True)
    mha_case(fam, "mha_no_bias", 6, 2, 4, 4, 2, bias=False)
    mha_case(fam, "mha_unbatched_padding", 6, 3, 4, 4, 1, unbatched=True, kpm=True,
             need_weights=True)
    encoder_case(fam, "encoder_layer_post_norm_relu", 8, 2, 5, 3)
    encoder_case(fam, "encoder_layer_norm_first_gelu", 8, 2, 5, 3, activation="gelu",
                 norm_first=True)
    encoder_case(fam, "encoder_layer_batch_first_padding", 8, 4, 6, 2, batch_first=True,
                 kpm=True)
    encoder_case(fam, "encoder_two_layers_final_norm_causal", 8, 2, 5, 2, layers=2,
                 final_norm=True, causal=True, norm_first=True, activation="gelu")
    encoder_case(fam, "encoder_two_layers_padding", 8, 2, 5, 2, layers=2, kpm=True,
                 batch_first=True)
    positions_cases(fam)
