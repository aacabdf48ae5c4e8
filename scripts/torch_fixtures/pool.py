"""Pooling: max_pool2d (with indices; ceil_mode, padding, dilation, ties, NaN at the first,
middle and last position of a window, +-inf), avg_pool2d (ceil_mode, padding,
count_include_pad, divisor_override, NaN and inf), adaptive avg and max pooling with output
sizes that do not divide the input and ones larger than it, the errors PyTorch raises, and
the pooling layers.

Tolerances: max pooling atol 1e-6, rtol 1e-6 (a max selects, so values and indices are
exact; an input gradient sums the cotangents of the few windows choosing it, maybe in
another order than PyTorch); average pooling atol 1e-6, rtol 1e-5 (a sum and a division
per window)."""

import torch
import torch.nn.functional as F

NAN = float("nan")
INF = float("inf")
EXACT = dict(atol=1e-6, rtol=1e-6)
AVG = dict(atol=1e-6, rtol=1e-5)


def pair(v):
    return list(v) if isinstance(v, (tuple, list)) else v


def max_case(fam, name, x, k, stride=None, padding=0, dilation=1, ceil_mode=False,
             expect_error=False, tol=EXACT):
    args = {"kernel": pair(k), "stride": pair(stride if stride is not None else k),
            "padding": pair(padding), "dilation": pair(dilation), "ceil_mode": ceil_mode}
    fam.case(name, "max_pool2d", {"x": x},
             lambda x: F.max_pool2d(x, k, stride, padding, dilation, ceil_mode,
                                    return_indices=True),
             args=args, expect_error=expect_error, **tol)


def avg_case(fam, name, x, k, stride=None, padding=0, ceil_mode=False,
             count_include_pad=True, divisor_override=None, expect_error=False):
    args = {"kernel": pair(k), "stride": pair(stride if stride is not None else k),
            "padding": pair(padding), "ceil_mode": ceil_mode,
            "count_include_pad": count_include_pad}
    if divisor_override is not None:
        args["divisor_override"] = divisor_override
    fam.case(name, "avg_pool2d", {"x": x},
             lambda x: F.avg_pool2d(x, k, stride, padding, ceil_mode, count_include_pad,
                                    divisor_override),
             args=args, expect_error=expect_error, **AVG)


def adaptive_case(fam, name, x, out, kind, expect_error=False):
    args = {"output": pair(out)}
    if kind == "avg":
        fam.case(name, "adaptive_avg_pool2d", {"x": x},
                 lambda x: F.adaptive_avg_pool2d(x, out), args=args,
                 expect_error=expect_error, **AVG)
    else:
        fam.case(name, "adaptive_max_pool2d", {"x": x},
                 lambda x: F.adaptive_max_pool2d(x, out, return_indices=True), args=args,
                 expect_error=expect_error, **EXACT)


def nan_windows(fam):
    """[1, 4, 4, 6] with 2 x 3 windows (stride 2 x 3): plane 0 has NaN at the first cell of
    every window, plane 1 in the middle, plane 2 at the last; plane 3 has two NaN in one
    window, +inf in another, only -inf in a third, and inf beside NaN in the fourth."""
    x = fam.uniform(1, 4, 4, 6)
    for wy, wx in [(0, 0), (0, 3), (2, 0), (2, 3)]:
        x[0, 0, wy, wx] = NAN
        x[0, 1, wy, wx + 1] = NAN
        x[0, 1, wy + 1, wx + 1] = 9.0
        x[0, 2, wy + 1, wx + 2] = NAN
    x[0, 3, 0, 0] = NAN
    x[0, 3, 1, 2] = NAN
    x[0, 3, 0, 4] = INF
    x[0, 3, 2:4, 0:3] = -INF
    x[0, 3, 2, 3] = INF
    x[0, 3, 3, 5] = NAN
    return x


def ties(fam, *shape):
    """Small integers: many equal maxima in every window."""
    return fam.randint(*shape, high=3).to(torch.float32)


def layer_case(fam, name, layer, args, x, tol):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    tensors = {"x": x}
    if isinstance(out, tuple):
        out, idx = out
        tensors["expect.indices"] = idx
    cot = fam.randn(*out.shape)
    (out * cot).sum().backward()
    tensors.update({"cot": cot, "expect.out": out, "expect.grad.x": x.grad})
    fam.custom(name, "pool_layer", tensors, args=args, **tol)


def build(fam):
    # ---- max_pool2d ----------------------------------------------------------------
    max_case(fam, "max_k2", fam.uniform(2, 3, 8, 8), 2)
    max_case(fam, "max_k3_s2_p1", fam.uniform(1, 2, 7, 9), 3, 2, 1)
    max_case(fam, "max_overlap_ceil", fam.uniform(2, 1, 7, 7), (3, 2), (2, 1), (1, 0),
             ceil_mode=True)
    max_case(fam, "max_dilation", fam.uniform(1, 2, 10, 9), 3, (1, 2), (1, 0), (2, 1))
    max_case(fam, "max_ceil_partial", fam.uniform(1, 1, 5, 5), 2, ceil_mode=True)
    max_case(fam, "max_ceil_dilation_pad", fam.uniform(2, 2, 9, 11), 2, (3, 4), 1, (1, 2),
             ceil_mode=True)
    max_case(fam, "max_ties_overlap", ties(fam, 1, 2, 6, 6), 3, 1, 1)
    max_case(fam, "max_ties_disjoint", ties(fam, 2, 1, 6, 8), 2)
    max_case(fam, "max_nan_inf_disjoint", nan_windows(fam), (2, 3))
    max_case(fam, "max_nan_inf_overlap", nan_windows(fam), 3, (1, 2), 1, ceil_mode=True)
    all_ninf = torch.full((1, 1, 3, 4), -INF)
    max_case(fam, "max_all_neg_inf", all_ninf, (1, 3), (1, 3), (0, 1))
    max_case(fam, "max_size1_spatial", fam.uniform(2, 2, 1, 7), (1, 3), (1, 2), (0, 1),
             ceil_mode=True)
    max_case(fam, "max_batch1_nonsquare", fam.uniform(1, 3, 5, 11), (2, 4), (3, 2))
    max_case(fam, "max_err_padding", fam.uniform(1, 1, 4, 4), 2, 2, 2, expect_error=True)
    max_case(fam, "max_err_window", fam.uniform(1, 1, 4, 4), 5, expect_error=True)

    # ---- avg_pool2d ----------------------------------------------------------------
    avg_case(fam, "avg_k2", fam.uniform(2, 3, 8, 8), 2)
    for cip in (True, False):
        tag = "incl" if cip else "excl"
        avg_case(fam, f"avg_k3_s2_p1_{tag}", fam.uniform(1, 2, 7, 9), 3, 2, 1,
                 count_include_pad=cip)
        avg_case(fam, f"avg_ceil_pad_{tag}", fam.uniform(1, 2, 5, 7), (3, 2), (2, 3), 1,
                 ceil_mode=True, count_include_pad=cip)
    avg_case(fam, "avg_divisor_override", fam.uniform(2, 1, 6, 5), 3, 2, 1,
             divisor_override=4)
    avg_case(fam, "avg_divisor_override_ceil_excl", fam.uniform(1, 2, 5, 7), (2, 3), (2, 2),
             (1, 1), ceil_mode=True, count_include_pad=False, divisor_override=5)
    avg_case(fam, "avg_size1_spatial", fam.uniform(2, 2, 1, 7), (1, 3), (1, 2), (0, 1))
    special = fam.uniform(1, 2, 4, 4)
    special[0, 0, 0, 0] = NAN
    special[0, 0, 2, 2] = INF
    special[0, 1, 0, 0] = INF
    special[0, 1, 1, 1] = -INF
    special[0, 1, 2, 2] = -INF
    avg_case(fam, "avg_nan_inf", special, 2)
    avg_case(fam, "avg_err_divisor_zero", fam.uniform(1, 1, 4, 4), 2, divisor_override=0,
             expect_error=True)
    avg_case(fam, "avg_err_padding", fam.uniform(1, 1, 4, 4), 3, 1, 2, expect_error=True)

    # ---- adaptive pooling ----------------------------------------------------------
    sizes = [
        ("5x7_to_3x4", (2, 3, 5, 7), (3, 4)),
        ("4x4_to_4x4", (1, 2, 4, 4), (4, 4)),
        ("3x5_to_5x8", (1, 2, 3, 5), (5, 8)),
        ("6x6_to_1", (2, 2, 6, 6), 1),
        ("7x3_to_2x1", (1, 3, 7, 3), (2, 1)),
        ("1x5_to_3x2", (1, 1, 1, 5), (3, 2)),
        ("10x9_to_4x7", (1, 2, 10, 9), (4, 7)),
        ("8x8_to_3", (1, 1, 8, 8), 3),
    ]
    for tag, shape, out in sizes:
        adaptive_case(fam, f"aavg_{tag}", fam.uniform(*shape), out, "avg")
        adaptive_case(fam, f"amax_{tag}", fam.uniform(*shape), out, "max")
    adaptive_case(fam, "aavg_nan_inf", special, (3, 3), "avg")
    adaptive_case(fam, "amax_nan_inf", nan_windows(fam), (3, 4), "max")
    adaptive_case(fam, "amax_ties", ties(fam, 1, 2, 7, 5), (3, 2), "max")
    adaptive_case(fam, "amax_err_empty", torch.zeros(1, 1, 0, 4), (1, 2), "max",
                  expect_error=True)

    # ---- layers --------------------------------------------------------------------
    x = fam.uniform(2, 3, 7, 9)
    layer_case(fam, "layer_maxpool", torch.nn.MaxPool2d((3, 2), (2, 1), (1, 0), (1, 2),
                                                        return_indices=True, ceil_mode=True),
               {"layer": "MaxPool2d", "kernel": [3, 2], "stride": [2, 1], "padding": [1, 0],
                "dilation": [1, 2], "ceil_mode": True}, x, EXACT)
    layer_case(fam, "layer_maxpool_default", torch.nn.MaxPool2d(2),
               {"layer": "MaxPool2d", "kernel": 2}, x, EXACT)
    layer_case(fam, "layer_avgpool", torch.nn.AvgPool2d((3, 2), (2, 3), 1, ceil_mode=True,
                                                        count_include_pad=False,
                                                        divisor_override=None),
               {"layer": "AvgPool2d", "kernel": [3, 2], "stride": [2, 3], "padding": 1,
                "ceil_mode": True, "count_include_pad": False}, x, AVG)
    layer_case(fam, "layer_avgpool_divisor", torch.nn.AvgPool2d(2, divisor_override=3),
               {"layer": "AvgPool2d", "kernel": 2, "divisor_override": 3}, x, AVG)
    layer_case(fam, "layer_adaptive_avg", torch.nn.AdaptiveAvgPool2d((4, 5)),
               {"layer": "AdaptiveAvgPool2d", "output": [4, 5]}, x, AVG)
    layer_case(fam, "layer_adaptive_avg_none", torch.nn.AdaptiveAvgPool2d((None, 4)),
               {"layer": "AdaptiveAvgPool2d", "output": [None, 4]}, x, AVG)
    layer_case(fam, "layer_adaptive_max", torch.nn.AdaptiveMaxPool2d((9, 4),
                                                                     return_indices=True),
               {"layer": "AdaptiveMaxPool2d", "output": [9, 4]}, x, EXACT)
