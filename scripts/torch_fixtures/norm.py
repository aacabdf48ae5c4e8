"""Normalization layers: F.batch_norm, F.layer_norm, F.group_norm, F.rms_norm as ops (forward and the
gradients of input, weight and bias), and the modules nn.LayerNorm, nn.GroupNorm,
nn.RMSNorm, nn.BatchNorm1d/2d as custom cases: the runner builds the Cinder layer with
PyTorch's defaults, loads the PyTorch module's state_dict strictly by name ("state.*"),
runs it, and must reproduce the outputs, gradients and (BatchNorm) the running statistics
and num_batches_tracked after each training step and the evaluation-mode output."""

import torch
import torch.nn as nn
import torch.nn.functional as F

# Composed of a mean, a variance and rsqrt in f32 on both sides: a few ulps apart.
TOL = dict(atol=2e-5, rtol=2e-4)


def _affine(fam, shape, weight, bias):
    inputs = {}
    if weight:
        inputs["weight"] = fam.uniform(*shape, lo=0.5, hi=1.5)
    if bias:
        inputs["bias"] = fam.randn(*shape, scale=0.5)
    return inputs


def layer_norm_cases(fam):
    specs = [
        # name, x shape, normalized_shape, weight, bias, eps
        ("ln_2d", (4, 7), (7,), True, True, 1e-5),
        ("ln_two_trailing_dims", (2, 3, 5), (3, 5), True, True, 1e-5),
        ("ln_three_trailing_dims", (2, 2, 3, 4), (2, 3, 4), True, True, 1e-5),
        ("ln_no_affine", (3, 2, 4), (4,), False, False, 1e-5),
        ("ln_weight_no_bias", (5, 6), (6,), True, False, 1e-5),
        ("ln_eps_1e-3", (3, 8), (8,), True, True, 1e-3),
        ("ln_1d_input", (9,), (9,), True, True, 1e-5),
        # a single normalized element: variance 0, output = bias
        ("ln_size1_dim", (4, 1), (1,), True, True, 1e-5),
    ]
    for name, shape, ns, w, b, eps in specs:
        inputs = {"x": fam.randn(*shape)}
        inputs.update(_affine(fam, ns, w, b))

        def fn(x, weight=None, bias=None, ns=ns, eps=eps):
            return F.layer_norm(x, ns, weight, bias, eps)

        # One element per row: x - mean is exactly 0 here, while PyTorch's fused
        # x * rstd - mean * rstd leaves rounding noise of about 1e-5 (times 1/sqrt(eps)).
        tol = dict(atol=1e-4, rtol=2e-4) if ns == (1,) else TOL
        fam.case(name, "layer_norm", inputs, fn,
                 args={"normalized_shape": list(ns), "eps": eps}, **tol)
    # A large mean and a small spread: the variance must not lose to cancellation (E[x^2]
    # - E[x]^2 would). The mean itself is rounded to an ulp of 100 (7.6e-6), which moves
    # the normalized values by 7.6e-6 / 0.05 = 1.5e-4 on either side.
    x = fam.randn(3, 16) * 0.05 + 100.0
    fam.case("ln_large_offset", "layer_norm", {"x": x},
             lambda x: F.layer_norm(x, (16,), None, None, 1e-5),
             args={"normalized_shape": [16], "eps": 1e-5}, atol=2e-3, rtol=2e-3)
    fam.case("ln_wrong_trailing_shape", "layer_norm", {"x": fam.randn(3, 5)},
             lambda x: F.layer_norm(x, (4,)), args={"normalized_shape": [4], "eps": 1e-5},
             expect_error=True)


def group_norm_cases(fam):
    specs = [
        # name, x shape, groups, affine, eps
        ("gn_3d", (2, 6, 5), 3, True, 1e-5),
        ("gn_4d", (3, 4, 2, 3), 2, True, 1e-5),
        ("gn_one_group", (2, 4, 3, 3), 1, True, 1e-5),
        ("gn_group_per_channel", (2, 4, 3, 2), 4, True, 1e-5),
        ("gn_2d_input", (4, 6), 2, True, 1e-5),
        ("gn_no_affine", (2, 6, 4), 3, False, 1e-5),
        ("gn_eps_1e-2", (2, 4, 5), 2, True, 1e-2),
    ]
    for name, shape, g, affine, eps in specs:
        inputs = {"x": fam.randn(*shape)}
        inputs.update(_affine(fam, (shape[1],), affine, affine))

        def fn(x, weight=None, bias=None, g=g, eps=eps):
            return F.group_norm(x, g, weight, bias, eps)

        fam.case(name, "group_norm", inputs, fn, args={"num_groups": g, "eps": eps}, **TOL)
    fam.case("gn_groups_do_not_divide", "group_norm", {"x": fam.randn(2, 6, 3)},
             lambda x: F.group_norm(x, 4), args={"num_groups": 4, "eps": 1e-5},
             expect_error=True)


def rms_norm_cases(fam):
    specs = [
        # name, x shape, normalized_shape, weight, eps (None: finfo(float32).eps)
        ("rms_2d_default_eps", (4, 8), (8,), True, None),
        ("rms_two_trailing_dims", (2, 3, 4), (3, 4), True, 1e-6),
        ("rms_no_weight", (3, 5), (5,), False, None),
        ("rms_eps_1e-2", (2, 6), (6,), True, 1e-2),
        # all zeros: the output is 0 and the gradient is finite thanks to eps
        ("rms_zero_row", None, (4,), True, 1e-5),
    ]
    for name, shape, ns, w, eps in specs:
        x = torch.zeros(2, 4) if shape is None else fam.randn(*shape)
        inputs = {"x": x}
        inputs.update(_affine(fam, ns, w, False))

        def fn(x, weight=None, ns=ns, eps=eps):
            return F.rms_norm(x, ns, weight, eps)

        args = {"normalized_shape": list(ns)}
        if eps is not None:
            args["eps"] = eps
        # at a zero row the gradient is 1/sqrt(eps): relative tolerance only
        tol = dict(atol=1e-3, rtol=2e-4) if shape is None else TOL
        fam.case(name, "rms_norm", inputs, fn, args=args, **tol)


def _randomize(module, fam):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight"):
                p.copy_(fam.uniform(*p.shape, lo=0.5, hi=1.5))
            else:
                p.copy_(fam.randn(*p.shape, scale=0.5))


def _state(tensors, prefix, module):
    for k, v in module.state_dict().items():
        tensors[f"{prefix}{k}"] = v.clone()


def module_case(fam, name, kind, module, x, args):
    """nn.LayerNorm / GroupNorm / RMSNorm under the name "m": state, forward, gradients."""
    _randomize(module, fam)
    tensors = {}
    _state(tensors, "state.m.", module)
    x = x.clone().requires_grad_(True)
    out = module(x)
    cot = fam.randn(*out.shape)
    (out * cot).sum().backward()
    tensors.update({"x": x.detach(), "cot": cot, "expect.out": out.detach(),
                    "expect.grad.x": x.grad})
    for k, p in module.named_parameters():
        tensors[f"expect.grad.{k}"] = p.grad
    fam.custom(name, kind, tensors, args=args, **TOL)


def norm_modules(fam):
    module_case(fam, "LayerNorm_default", "LayerNorm", nn.LayerNorm([3, 4]),
                fam.randn(2, 3, 4), {"normalized_shape": [3, 4]})
    module_case(fam, "LayerNorm_no_bias", "LayerNorm", nn.LayerNorm(5, bias=False),
                fam.randn(3, 5), {"normalized_shape": [5], "bias": False})
    module_case(fam, "LayerNorm_no_affine", "LayerNorm",
                nn.LayerNorm(6, elementwise_affine=False), fam.randn(2, 6),
                {"normalized_shape": [6], "elementwise_affine": False})
    module_case(fam, "GroupNorm_default", "GroupNorm", nn.GroupNorm(2, 4),
                fam.randn(2, 4, 3, 3), {"num_groups": 2, "num_channels": 4})
    module_case(fam, "GroupNorm_no_affine", "GroupNorm", nn.GroupNorm(3, 6, affine=False),
                fam.randn(2, 6, 4), {"num_groups": 3, "num_channels": 6, "affine": False})
    module_case(fam, "RMSNorm_default", "RMSNorm", nn.RMSNorm([2, 5]),
                fam.randn(3, 2, 5), {"normalized_shape": [2, 5]})
    module_case(fam, "RMSNorm_no_affine", "RMSNorm",
                nn.RMSNorm(4, eps=1e-4, elementwise_affine=False), fam.randn(3, 4),
                {"normalized_shape": [4], "eps": 1e-4, "elementwise_affine": False})


def batch_norm_case(fam, name, kind, c, shapes, eval_shape, momentum=0.1, affine=True,
                    track=True, loaded=False, eps=1e-5):
    """A BatchNorm under the name "bn": the initial state_dict, one forward/backward per
    training step (outputs, input and parameter gradients), the buffers after the steps,
    and an evaluation-mode forward."""
    cls = nn.BatchNorm1d if kind == "1d" else nn.BatchNorm2d
    m = cls(c, eps=eps, momentum=momentum, affine=affine, track_running_stats=track)
    if affine:
        _randomize(m, fam)
    if loaded and track:
        # a state as if trained before: running statistics and a counter of 7
        with torch.no_grad():
            m.running_mean.copy_(fam.randn(c, scale=0.5))
            m.running_var.copy_(fam.uniform(c, lo=0.5, hi=2.0))
            m.num_batches_tracked.fill_(7)
    tensors = {}
    _state(tensors, "state.bn.", m)
    m.train()
    for i, shape in enumerate(shapes):
        m.zero_grad()
        x = (fam.randn(*shape) * 1.5 + 0.3).requires_grad_(True)
        out = m(x)
        cot = fam.randn(*out.shape)
        (out * cot).sum().backward()
        tensors.update({f"x{i}": x.detach(), f"cot{i}": cot, f"expect.out{i}": out.detach(),
                        f"expect.grad.x{i}": x.grad})
        for k, p in m.named_parameters():
            tensors[f"expect.grad.{k}{i}"] = p.grad.clone()
    for k, v in m.named_buffers():
        tensors[f"expect.state.bn.{k}"] = v.clone()
    m.eval()
    xe = fam.randn(*eval_shape)
    with torch.no_grad():
        tensors.update({"x_eval": xe, "expect.out_eval": m(xe)})
    args = {"kind": kind, "channels": c, "steps": len(shapes), "momentum": momentum,
            "affine": affine, "track_running_stats": track, "eps": eps}
    # running statistics: an unbiased variance and a blend per step, in f32
    fam.custom(name, "BatchNorm", tensors, args=args, atol=5e-5, rtol=5e-4)


def batch_norm_cases(fam):
    batch_norm_case(fam, "bn1d_features", "1d", 3, [(5, 3), (4, 3), (6, 3)], (2, 3))
    batch_norm_case(fam, "bn1d_sequences", "1d", 4, [(3, 4, 5), (2, 4, 7)], (2, 4, 3))
    batch_norm_case(fam, "bn2d", "2d", 3, [(2, 3, 4, 4), (3, 3, 2, 5), (2, 3, 3, 3)],
                    (1, 3, 2, 2))
    batch_norm_case(fam, "bn2d_loaded_state", "2d", 2, [(2, 2, 3, 3), (2, 2, 3, 3)],
                    (2, 2, 2, 2), loaded=True)
    batch_norm_case(fam, "bn1d_momentum_none", "1d", 3, [(4, 3), (5, 3), (3, 3), (6, 3)],
                    (2, 3), momentum=None)
    batch_norm_case(fam, "bn2d_momentum_none_loaded", "2d", 2, [(2, 2, 2, 3), (3, 2, 2, 2)],
                    (1, 2, 3, 3), momentum=None, loaded=True)
    batch_norm_case(fam, "bn2d_momentum_0.3", "2d", 2, [(2, 2, 3, 3), (2, 2, 3, 3)],
                    (1, 2, 2, 2), momentum=0.3)
    batch_norm_case(fam, "bn1d_no_affine", "1d", 3, [(4, 3), (5, 3)], (2, 3), affine=False)
    # no buffers: batch statistics in evaluation mode too
    batch_norm_case(fam, "bn2d_no_running_stats", "2d", 2, [(2, 2, 3, 3)], (3, 2, 2, 2),
                    track=False)
    batch_norm_case(fam, "bn1d_no_running_stats_no_affine", "1d", 3, [(4, 3)], (5, 3),
                    track=False, affine=False)
    batch_norm_case(fam, "bn1d_eps_1e-3", "1d", 2, [(3, 2)], (2, 2), eps=1e-3)


def batch_norm_op_cases(fam):
    """F.batch_norm as an op: batch statistics (training=True) and running statistics
    (training=False), with and without weight and bias, on [N, C], [N, C, L] and
    [N, C, H, W]; a large offset for the variance's cancellation."""
    for i, (shape, weight, bias) in enumerate([((6, 3), True, True), ((4, 3, 5), True, False),
                                               ((3, 2, 4, 5), True, True),
                                               ((5, 4, 3, 3), False, False)]):
        c = shape[1]
        x = fam.randn(*shape)
        inputs = {"x": x, **_affine(fam, (c,), weight, bias)}

        def train(x, weight=None, bias=None):
            return F.batch_norm(x, None, None, weight, bias, training=True, eps=1e-5)
        fam.case(f"bn_op_train_{i}", "batch_norm", inputs, train,
                 args={"training": True, "eps": 1e-5}, **TOL)
        rm = fam.randn(c, scale=0.3)
        rv = fam.uniform(c, lo=0.5, hi=2.0)
        ev = {"x": x, "running_mean": rm, "running_var": rv,
              **_affine(fam, (c,), weight, bias)}

        def evaluate(x, running_mean, running_var, weight=None, bias=None):
            return F.batch_norm(x, running_mean, running_var, weight, bias, training=False,
                                eps=1e-3)
        fam.case(f"bn_op_eval_{i}", "batch_norm", ev, evaluate,
                 args={"training": False, "eps": 1e-3},
                 grad=[k for k in ev if k not in ("running_mean", "running_var")], **TOL)
    x = fam.randn(8, 2, 3, scale=0.05) + 100.0
    fam.case("bn_op_large_offset", "batch_norm", {"x": x},
             lambda x: F.batch_norm(x, None, None, training=True, eps=1e-5),
             args={"training": True, "eps": 1e-5}, atol=3e-3, rtol=3e-3)
    fam.case("bn_op_one_value_per_channel", "batch_norm", {"x": fam.randn(1, 3)},
             lambda x: F.batch_norm(x, None, None, training=True), expect_error=True,
             args={"training": True, "eps": 1e-5})


def build(fam):
    batch_norm_op_cases(fam)
    layer_norm_cases(fam)
    group_norm_cases(fam)
    rms_norm_cases(fam)
    norm_modules(fam)
    batch_norm_cases(fam)
