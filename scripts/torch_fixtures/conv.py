"""Convolutions: conv2d and conv_transpose2d with groups (depthwise, channel multipliers,
general groups), non-square kernels, strides, paddings and dilations, output padding, with
and without bias, batch 1, odd sizes and size-1 spatial dims; the errors PyTorch raises;
and the Conv2d / ConvTranspose2d layers loading a PyTorch state_dict by name.

Tolerance of every case: atol 1e-5, rtol 1e-4 (f32 convolutions: Cinder sums in another
order than PyTorch's CPU kernels, and the weight gradients sum over the batch and every
position)."""

import torch
import torch.nn.functional as F

ATOL = 1e-5
RTOL = 1e-4


def pair(v):
    return list(v) if isinstance(v, (tuple, list)) else v


def conv_case(fam, name, xs, ws, bias=True, stride=1, padding=0, dilation=1, groups=1,
              expect_error=False):
    x = fam.uniform(*xs)
    w = fam.uniform(*ws)
    inputs = {"x": x, "w": w}
    if bias:
        inputs["b"] = fam.uniform(ws[0])
    args = {"stride": pair(stride), "padding": pair(padding), "dilation": pair(dilation),
            "groups": groups}
    fam.case(name, "conv2d", inputs,
             lambda x, w, b=None: F.conv2d(x, w, b, stride, padding, dilation, groups),
             args=args, atol=ATOL, rtol=RTOL, expect_error=expect_error)


def convt_case(fam, name, xs, ws, bias=True, stride=1, padding=0, output_padding=0,
               dilation=1, groups=1, expect_error=False):
    x = fam.uniform(*xs)
    w = fam.uniform(*ws)
    inputs = {"x": x, "w": w}
    if bias:
        inputs["b"] = fam.uniform(ws[1] * groups)
    args = {"stride": pair(stride), "padding": pair(padding),
            "output_padding": pair(output_padding), "dilation": pair(dilation),
            "groups": groups}
    fam.case(name, "conv_transpose2d", inputs,
             lambda x, w, b=None: F.conv_transpose2d(x, w, b, stride, padding, output_padding,
                                                     groups, dilation),
             args=args, atol=ATOL, rtol=RTOL, expect_error=expect_error)


def layer_case(fam, name, transposed, cin, cout, k, n=2, hw=(6, 5), **kw):
    """A layer whose parameters come from a PyTorch state_dict, loaded by name."""
    torch.manual_seed(len(fam.meta))
    cls = torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d
    layer = cls(cin, cout, k, **kw)
    x = fam.uniform(n, cin, *hw).requires_grad_(True)
    y = layer(x)
    cot = fam.randn(*y.shape)
    (y * cot).sum().backward()
    tensors = {"x": x, "cot": cot, "expect.out": y, "expect.grad.x": x.grad}
    for key, v in layer.state_dict().items():
        tensors[f"state.conv.{key}"] = v
        tensors[f"expect.grad.{key}"] = getattr(layer, key).grad
    args = {"in": cin, "out": cout, "kernel": pair(k), "transposed": transposed,
            "bias": kw.get("bias", True)}
    for key in ("stride", "padding", "dilation", "output_padding"):
        if key in kw:
            args[key] = pair(kw[key])
    args["groups"] = kw.get("groups", 1)
    fam.custom(name, "conv_layer", tensors, args=args, atol=ATOL, rtol=RTOL)


def build(fam):
    # ---- conv2d --------------------------------------------------------------------
    conv_case(fam, "conv_basic", (2, 3, 7, 6), (4, 3, 3, 3), padding=1)
    conv_case(fam, "conv_no_bias_stride_pad", (1, 2, 9, 8), (3, 2, 3, 2), bias=False,
              stride=(2, 3), padding=(0, 1))
    conv_case(fam, "conv_dilation", (3, 1, 10, 11), (2, 1, 3, 3), stride=2, padding=(2, 1),
              dilation=2)
    conv_case(fam, "conv_gemm_nonsquare", (2, 4, 9, 7), (5, 4, 3, 3), stride=(2, 1),
              padding=1, dilation=(1, 2))
    conv_case(fam, "conv_kernel_5x2", (1, 2, 6, 5), (3, 2, 5, 2), padding=(2, 0),
              stride=(1, 2))
    conv_case(fam, "conv_1x1", (2, 5, 4, 4), (3, 5, 1, 1))
    conv_case(fam, "conv_depthwise", (2, 6, 7, 5), (6, 1, 3, 3), padding=1, groups=6)
    conv_case(fam, "conv_depthwise_multiplier", (1, 4, 9, 8), (8, 1, 3, 2), bias=False,
              stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=4)
    conv_case(fam, "conv_depthwise_5x5", (2, 3, 8, 7), (3, 1, 5, 5), padding=2, groups=3)
    conv_case(fam, "conv_groups2_gemm", (2, 8, 6, 7), (12, 4, 3, 3), padding=1, groups=2)
    conv_case(fam, "conv_groups4_stride", (2, 16, 5, 4), (32, 4, 3, 3), bias=False, stride=2,
              padding=1, groups=4)
    conv_case(fam, "conv_groups3_small", (3, 6, 5, 5), (9, 2, 2, 3), stride=(1, 2),
              padding=(1, 0), dilation=(1, 2), groups=3)
    conv_case(fam, "conv_size1_spatial", (1, 3, 1, 7), (6, 1, 1, 3), padding=(0, 1),
              groups=3)
    conv_case(fam, "conv_batch1_odd", (1, 5, 11, 3), (10, 1, 3, 3), stride=(3, 2),
              padding=1, dilation=(2, 1), groups=5)
    conv_case(fam, "conv_err_groups_out", (1, 3, 5, 5), (2, 1, 3, 3), groups=3, bias=False,
              expect_error=True)
    conv_case(fam, "conv_err_groups_in", (1, 4, 5, 5), (4, 1, 3, 3), groups=2, bias=False,
              expect_error=True)
    conv_case(fam, "conv_err_kernel_too_large", (1, 2, 4, 4), (2, 2, 5, 5), bias=False,
              expect_error=True)

    # ---- conv_transpose2d ----------------------------------------------------------
    convt_case(fam, "convt_basic", (2, 3, 4, 5), (3, 2, 3, 3), stride=2, padding=1,
               output_padding=1)
    convt_case(fam, "convt_no_bias_k4", (1, 2, 3, 3), (2, 4, 4, 4), bias=False, stride=2,
               padding=1)
    convt_case(fam, "convt_dilation_nonsquare", (2, 1, 5, 4), (1, 3, 3, 2), stride=(1, 2),
               padding=(0, 1), output_padding=(0, 1), dilation=(2, 1))
    convt_case(fam, "convt_depthwise", (2, 4, 3, 5), (4, 1, 3, 3), stride=2, padding=1,
               output_padding=1, groups=4)
    convt_case(fam, "convt_depthwise_multiplier", (1, 3, 4, 3), (3, 2, 3, 2), bias=False,
               stride=(1, 2), padding=(0, 1), dilation=(2, 1), groups=3)
    convt_case(fam, "convt_groups2_gemm", (2, 12, 3, 4), (12, 4, 3, 3), stride=2, padding=1,
               output_padding=(1, 0), groups=2)
    convt_case(fam, "convt_size1_spatial", (1, 2, 1, 4), (2, 3, 2, 2), groups=2)
    convt_case(fam, "convt_err_output_padding", (1, 2, 3, 3), (2, 2, 3, 3),
               output_padding=1, expect_error=True)
    convt_case(fam, "convt_err_groups", (1, 3, 3, 3), (3, 2, 3, 3), groups=2,
               expect_error=True)

    # ---- layers from a state_dict --------------------------------------------------
    layer_case(fam, "layer_conv_depthwise", False, 4, 8, 3, padding=1, groups=4)
    layer_case(fam, "layer_conv_grouped_nonsquare", False, 6, 9, (3, 2), stride=(2, 1),
               padding=(1, 0), dilation=(1, 2), groups=3, bias=False)
    layer_case(fam, "layer_conv_dense", False, 3, 5, (1, 3), n=1, hw=(4, 7), padding=(0, 1))
    layer_case(fam, "layer_convt_grouped", True, 4, 6, 3, stride=2, padding=1,
               output_padding=1, groups=2)
    layer_case(fam, "layer_convt_dense_nonsquare", True, 3, 2, (2, 3), hw=(3, 4),
               stride=(1, 2), padding=(0, 1), output_padding=(0, 1), bias=False)
