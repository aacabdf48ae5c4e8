"""Optimizers (torch.optim: SGD, Adam, AdamW, RMSprop, Adagrad) with every flag and with
parameter groups, and gradient clipping (torch.nn.utils.clip_grad_norm_ / _value_).

Optimizer cases (custom, op = the optimizer's name):

    args:    {"groups": [{hyperparameters of group g, PyTorch's names}, ...],
              "sizes": [parameters in group g], "shapes": [[...], ...] (all parameters),
              "steps": K, "lrs": [[lr of group g before step k] per step] (optional)}
    tensors: param{i} (initial values), grad{k}.{i} (the gradient of parameter i at step k;
             absent: no gradient at that step), expect.step{k}.param{i} (parameter i after
             step k), expect.step{k}.state.{i}.{key} (PyTorch's state_dict()["state"]
             after step k, step as a float), expect.param_groups.{g}.params (the group's
             parameter indices) and expect.param_groups.{g}.lr after the last step.

Clipping cases (custom, op = clip_grad_norm / clip_grad_value):

    args:    {"max_norm", "norm_type", "error_if_nonfinite"} or {"clip_value"}, "shapes"
    tensors: grad{i} (absent: no gradient), expect.norm, expect.grad{i}

Tolerances: the updates run in f32 on both sides with the same formulas, but not the same
operation order (PyTorch's lerp_ and addcdiv_, the host-side bias corrections); a few steps
of Adam / RMSprop / Adagrad divide by small square roots, so atol 1e-6, rtol 1e-5 (1e-4
for the RMSprop centered cases, whose variance estimate v - ga^2 cancels). Norms of order p
are summed in another order: rtol 1e-5.
"""

import math

import torch

NAN = float("nan")
INF = float("inf")

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def opt_case(fam, name, op, groups, shapes, steps=4, skip=(), lrs=None, grads=None,
             atol=1e-6, rtol=1e-5, scale=1.0):
    """`groups`: list of (number of parameters, hyperparameters); `skip`: (step, param)
    pairs without a gradient; `grads`: fixed gradients by (step, param)."""
    params = [fam.randn(*s) for s in shapes]
    leaves = [p.clone().requires_grad_(True) for p in params]
    pg, k = [], 0
    for n, hp in groups:
        pg.append(dict(hp, params=leaves[k:k + n]))
        k += n
    assert k == len(shapes), name
    if len(groups) == 1:
        # One group: the options as constructor arguments, as PyTorch is usually called
        # (PyTorch's Adagrad reads initial_accumulator_value from the constructor only).
        opt = OPTIMIZERS[op](leaves, **groups[0][1])
    else:
        opt = OPTIMIZERS[op](pg)
    tensors = {f"param{i}": p for i, p in enumerate(params)}
    for step in range(steps):
        if lrs is not None:
            for g, lr in zip(opt.param_groups, lrs[step]):
                g["lr"] = lr
        for i, p in enumerate(leaves):
            if (step, i) in skip:
                p.grad = None
                continue
            g = grads.get((step, i)) if grads else None
            if g is None:
                g = fam.randn(*shapes[i], scale=scale)
            tensors[f"grad{step}.{i}"] = g
            p.grad = g.clone()
        opt.step()
        for i, p in enumerate(leaves):
            tensors[f"expect.step{step}.param{i}"] = p.detach().clone()
        sd = opt.state_dict()
        for i, st in sd["state"].items():
            for key, v in st.items():
                v = v if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                tensors[f"expect.step{step}.state.{i}.{key}"] = v.detach().clone().float()
    for g, grp in enumerate(opt.state_dict()["param_groups"]):
        tensors[f"expect.param_groups.{g}.params"] = torch.tensor(grp["params"])
        tensors[f"expect.param_groups.{g}.lr"] = torch.tensor(float(grp["lr"]))
    hps = [hp for _, hp in groups]
    args = {"groups": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()}
                       for hp in hps],
            "sizes": [n for n, _ in groups], "shapes": [list(s) for s in shapes],
            "steps": steps}
    if lrs is not None:
        args["lrs"] = lrs
    fam.custom(name, op, tensors, args=args, atol=atol, rtol=rtol)


def opt_error(fam, name, op, groups, shapes, dup=False):
    """PyTorch refuses these options (ValueError); Cinder's constructor must return Err.
    (PyTorch checks only the constructor's own options; Cinder checks every group's too,
    which no fixture can show.)"""
    leaves = [torch.zeros(*s, requires_grad=True) for s in shapes]
    pg, k = [], 0
    for n, hp in groups:
        pg.append(dict(hp, params=leaves[:n] if dup else leaves[k:k + n]))
        k += n
    try:
        if len(groups) == 1:
            # PyTorch checks the constructor's options, not a group's own.
            OPTIMIZERS[op](leaves, **groups[0][1])
        else:
            OPTIMIZERS[op](pg)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{name}: PyTorch accepted it")
    args = {"groups": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()}
                       for _, hp in groups],
            "sizes": [n for n, _ in groups], "shapes": [list(s) for s in shapes],
            "steps": 1, "duplicate": dup}
    fam.custom(name, op, {}, args=args, expect_error=True)


def clip_norm_case(fam, name, grads, max_norm, norm_type=2.0, error_if_nonfinite=False,
                   rtol=1e-5, atol=1e-7):
    """`grads`: one tensor per parameter, or None (no gradient)."""
    shapes = [list(g.shape) if g is not None else [2] for g in grads]
    leaves = [torch.zeros(*s, requires_grad=True) for s in shapes]
    for p, g in zip(leaves, grads):
        p.grad = None if g is None else g.clone()
    args = {"max_norm": max_norm, "norm_type": norm_type if math.isfinite(norm_type) else "inf",
            "error_if_nonfinite": error_if_nonfinite, "shapes": shapes}
    tensors = {f"grad{i}": g for i, g in enumerate(grads) if g is not None}
    try:
        norm = torch.nn.utils.clip_grad_norm_(leaves, max_norm, norm_type=norm_type,
                                              error_if_nonfinite=error_if_nonfinite)
    except RuntimeError:
        fam.custom(name, "clip_grad_norm", tensors, args=args, expect_error=True)
        return
    tensors["expect.norm"] = norm
    for i, p in enumerate(leaves):
        if p.grad is not None:
            tensors[f"expect.grad{i}"] = p.grad
    fam.custom(name, "clip_grad_norm", tensors, args=args, atol=atol, rtol=rtol)


def clip_value_case(fam, name, grads, clip_value):
    shapes = [list(g.shape) if g is not None else [2] for g in grads]
    leaves = [torch.zeros(*s, requires_grad=True) for s in shapes]
    for p, g in zip(leaves, grads):
        p.grad = None if g is None else g.clone()
    torch.nn.utils.clip_grad_value_(leaves, clip_value)
    tensors = {f"grad{i}": g for i, g in enumerate(grads) if g is not None}
    for i, p in enumerate(leaves):
        if p.grad is not None:
            tensors[f"expect.grad{i}"] = p.grad
    fam.custom(name, "clip_grad_value", tensors,
               args={"clip_value": clip_value, "shapes": shapes}, atol=0.0, rtol=0.0)


def build(fam):
    two = [(3, 5), (7,)]
    three = [(4, 3), (4,), (2, 3, 2)]

    # ---- SGD ---------------------------------------------------------------------------
    opt_case(fam, "sgd_plain", "sgd", [(2, {"lr": 0.1})], two)
    opt_case(fam, "sgd_weight_decay_maximize", "sgd",
             [(2, {"lr": 0.1, "weight_decay": 0.1, "maximize": True})], two)
    opt_case(fam, "sgd_momentum", "sgd", [(2, {"lr": 0.05, "momentum": 0.9})], two)
    opt_case(fam, "sgd_momentum_dampening_weight_decay", "sgd",
             [(2, {"lr": 0.05, "momentum": 0.9, "dampening": 0.25, "weight_decay": 0.05})], two)
    opt_case(fam, "sgd_nesterov", "sgd",
             [(2, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05})], two)
    opt_case(fam, "sgd_nesterov_maximize", "sgd",
             [(2, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "maximize": True})], two)
    opt_case(fam, "sgd_momentum_skipped_steps", "sgd",
             [(2, {"lr": 0.05, "momentum": 0.9})], two, skip={(0, 1), (2, 0)})
    opt_case(fam, "sgd_groups", "sgd",
             [(2, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
              (1, {"lr": 0.01})], three, skip={(1, 2)})
    opt_case(fam, "sgd_lr_changes", "sgd",
             [(1, {"lr": 0.1, "momentum": 0.5}), (1, {"lr": 0.2})], two,
             lrs=[[0.1, 0.2], [0.05, 0.2], [0.05, 0.02], [0.0, 0.01]])
    g_edge = torch.tensor([[NAN, 1.0, INF, -INF, 0.5], [0.0, -1.0, 2.0, NAN, 1e30],
                           [1.0, 1.0, 1.0, 1.0, 1.0]])
    opt_case(fam, "sgd_nan_inf_gradient", "sgd", [(2, {"lr": 0.1, "momentum": 0.9})], two,
             steps=2, grads={(0, 0): g_edge})

    # ---- Adam / AdamW ------------------------------------------------------------------
    opt_case(fam, "adam_defaults_lr", "adam", [(2, {"lr": 0.01})], two)
    opt_case(fam, "adam_weight_decay", "adam", [(2, {"lr": 0.01, "weight_decay": 0.1})], two)
    opt_case(fam, "adam_amsgrad", "adam", [(2, {"lr": 0.01, "amsgrad": True})], two, steps=5)
    opt_case(fam, "adam_amsgrad_weight_decay_maximize", "adam",
             [(2, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "maximize": True})], two)
    opt_case(fam, "adam_betas_eps", "adam",
             [(2, {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-6})], two)
    opt_case(fam, "adam_groups_skipped", "adam",
             [(1, {"lr": 0.01, "weight_decay": 0.1}), (2, {"lr": 0.001, "amsgrad": True})],
             three, skip={(0, 2), (1, 0)})
    opt_case(fam, "adam_lr_changes", "adam", [(2, {"lr": 0.01})], two,
             lrs=[[0.01], [0.005], [0.02], [0.001]])
    opt_case(fam, "adamw_defaults_lr", "adamw", [(2, {"lr": 0.01})], two)
    opt_case(fam, "adamw_weight_decay_amsgrad", "adamw",
             [(2, {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True})], two, steps=5)
    opt_case(fam, "adamw_maximize", "adamw",
             [(2, {"lr": 0.01, "weight_decay": 0.1, "maximize": True})], two)
    # The usual recipe: decay on the weights (group 0), none on biases (group 1).
    opt_case(fam, "adamw_no_decay_group", "adamw",
             [(2, {"lr": 0.01, "weight_decay": 0.1}), (1, {"lr": 0.01, "weight_decay": 0.0})],
             [(4, 3), (2, 3, 2), (4,)])

    # ---- RMSprop -----------------------------------------------------------------------
    opt_case(fam, "rmsprop_defaults", "rmsprop", [(2, {})], two)
    opt_case(fam, "rmsprop_centered", "rmsprop", [(2, {"lr": 0.01, "centered": True})], two,
             rtol=1e-4, atol=1e-5)
    opt_case(fam, "rmsprop_momentum", "rmsprop", [(2, {"lr": 0.01, "momentum": 0.9})], two)
    opt_case(fam, "rmsprop_centered_momentum_weight_decay", "rmsprop",
             [(2, {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1})], two,
             rtol=1e-4, atol=1e-5)
    opt_case(fam, "rmsprop_alpha_eps_maximize", "rmsprop",
             [(2, {"lr": 0.01, "alpha": 0.9, "eps": 1e-4, "maximize": True})], two)
    opt_case(fam, "rmsprop_groups", "rmsprop",
             [(1, {"lr": 0.01, "momentum": 0.9}), (2, {"lr": 0.001, "centered": True})],
             three, rtol=1e-4, atol=1e-5)

    # ---- Adagrad -----------------------------------------------------------------------
    opt_case(fam, "adagrad_defaults", "adagrad", [(2, {})], two)
    opt_case(fam, "adagrad_lr_decay_initial_accumulator_weight_decay", "adagrad",
             [(2, {"lr": 0.1, "lr_decay": 0.2, "initial_accumulator_value": 0.3,
                   "weight_decay": 0.1})], two)
    opt_case(fam, "adagrad_eps_maximize", "adagrad",
             [(2, {"lr": 0.1, "eps": 1e-3, "maximize": True})], two)
    opt_case(fam, "adagrad_groups", "adagrad",
             [(2, {"lr": 0.1, "lr_decay": 0.5}), (1, {"lr": 0.05, "weight_decay": 0.2})], three)

    # ---- refused options ---------------------------------------------------------------
    opt_error(fam, "sgd_negative_lr", "sgd", [(1, {"lr": -0.1})], [(3,)])
    opt_error(fam, "sgd_negative_momentum", "sgd", [(1, {"lr": 0.1, "momentum": -0.5})], [(3,)])
    opt_error(fam, "sgd_nesterov_with_dampening", "sgd",
              [(1, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True})], [(3,)])
    opt_error(fam, "sgd_nesterov_without_momentum", "sgd",
              [(1, {"lr": 0.1, "nesterov": True})], [(3,)])
    opt_error(fam, "sgd_negative_weight_decay", "sgd",
              [(1, {"lr": 0.1, "weight_decay": -1.0})], [(3,)])
    opt_error(fam, "sgd_parameter_in_two_groups", "sgd",
              [(1, {"lr": 0.1}), (1, {"lr": 0.2})], [(3,), (3,)], dup=True)
    opt_error(fam, "adam_beta1_1", "adam", [(1, {"betas": (1.0, 0.999)})], [(3,)])
    opt_error(fam, "adam_beta2_negative", "adam", [(1, {"betas": (0.9, -0.1)})], [(3,)])
    opt_error(fam, "adam_negative_eps", "adam", [(1, {"eps": -1e-8})], [(3,)])
    opt_error(fam, "adamw_negative_weight_decay", "adamw", [(1, {"weight_decay": -0.1})], [(3,)])
    opt_error(fam, "rmsprop_negative_alpha", "rmsprop", [(1, {"alpha": -0.1})], [(3,)])
    opt_error(fam, "rmsprop_negative_momentum", "rmsprop", [(1, {"momentum": -0.1})], [(3,)])
    opt_error(fam, "adagrad_negative_lr_decay", "adagrad", [(1, {"lr_decay": -0.1})], [(3,)])
    opt_error(fam, "adagrad_negative_initial_accumulator", "adagrad",
              [(1, {"initial_accumulator_value": -0.1})], [(3,)])

    # ---- clip_grad_norm_ / clip_grad_value_ --------------------------------------------
    gs = lambda: [fam.randn(6, 5), None, fam.randn(7), fam.randn(2, 2, 3)]  # noqa: E731
    for p in (1.0, 2.0, 3.0, 0.5, INF):
        tag = "inf" if p == INF else str(p).replace(".", "_")
        clip_norm_case(fam, f"clip_norm_p{tag}_clips", gs(), 0.5, p)
        clip_norm_case(fam, f"clip_norm_p{tag}_below_max", gs(), 1e4, p)
    clip_norm_case(fam, "clip_norm_no_gradients", [None, None], 1.0)
    clip_norm_case(fam, "clip_norm_zero_gradients", [torch.zeros(3), torch.zeros(2, 2)], 1.0)
    clip_norm_case(fam, "clip_norm_max_norm_0", gs(), 0.0)
    clip_norm_case(fam, "clip_norm_error_if_nonfinite_finite", gs(), 0.5, 2.0, True)
    for p in (2.0, 1.0, INF):
        tag = "inf" if p == INF else str(p).replace(".", "_")
        with_nan = [fam.randn(4), torch.tensor([1.0, NAN, -2.0])]
        clip_norm_case(fam, f"clip_norm_p{tag}_nan", with_nan, 1.0, p)
        with_inf = [fam.randn(4), torch.tensor([1.0, -INF, 0.0])]
        clip_norm_case(fam, f"clip_norm_p{tag}_inf", with_inf, 1.0, p)
        clip_norm_case(fam, f"clip_norm_p{tag}_nan_error", with_nan, 1.0, p, True)
        clip_norm_case(fam, f"clip_norm_p{tag}_inf_error", with_inf, 1.0, p, True)
    # |g|^2 overflows f32 for 1e20: the L2 norm is inf, as PyTorch's f32 reduction.
    clip_norm_case(fam, "clip_norm_overflow", [torch.tensor([1e20, 1.0, 3.0])], 1.0)
    clip_value_case(fam, "clip_value", [fam.randn(5, 4), None, fam.randn(9)], 0.3)
    clip_value_case(fam, "clip_value_edges",
                    [torch.tensor([NAN, INF, -INF, 0.3, -0.3, 0.2999, 1e30, -0.0])], 0.3)
    clip_value_case(fam, "clip_value_0", [fam.randn(6)], 0.0)
