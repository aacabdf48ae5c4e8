"""Losses: every reduction of cross-entropy (class indices, class probabilities, weights,
label smoothing, ignore_index including an all-ignored batch and an out-of-range ignored
index, N-d inputs, unbatched inputs, saturated logits and ties), NLL, BCE at p of exactly
0 and 1 (also through a saturated sigmoid), BCE with logits, KL divergence (both target
forms, batchmean, broadcasting, zero targets), smooth L1 (beta 0, ties at beta), Huber,
MSE, L1, Gaussian NLL (PyTorch's var shapes, var below eps), triplet margin (p, eps,
swap), cosine embedding and margin ranking, forward and gradients.

Class targets are int64 here and u32 in Cinder; PyTorch's ignore_index=-100 default has
no u32 form, so every case that ignores passes an explicit index (the runner's
ignore_index is None otherwise)."""

import torch
import torch.nn.functional as F

# Sums of a few dozen f32 terms: a few ulps apart.
TOL = dict(atol=1e-5, rtol=1e-4)
REDUCTIONS = ("mean", "sum", "none")


def reductions(fam, name, op, inputs, fn, args=None, **kw):
    """One case per reduction; `fn(reduction=..., **inputs)`."""
    for r in REDUCTIONS:
        a = dict(args or {})
        a["reduction"] = r
        kw2 = dict(TOL)
        kw2.update(kw)
        fam.case(f"{name}_{r}", op, inputs, lambda r=r, **x: fn(reduction=r, **x), args=a,
                 **kw2)


def cross_entropy_cases(fam):
    ce = "cross_entropy"

    def ce_fn(weight_key=False, **opts):
        def f(reduction, x, y, weight=None):
            return F.cross_entropy(x, y, weight=weight, reduction=reduction, **opts)
        return f

    x, y = fam.randn(5, 4, scale=2.0), fam.randint(5, high=4)
    w = fam.uniform(4, lo=0.2, hi=2.0)
    reductions(fam, "ce", ce, {"x": x, "y": y}, ce_fn(), grad=["x"])
    reductions(fam, "ce_weight", ce, {"x": x, "y": y, "weight": w}, ce_fn(), grad=["x"])
    reductions(fam, "ce_smooth", ce, {"x": x, "y": y}, ce_fn(label_smoothing=0.1),
               args={"label_smoothing": 0.1}, grad=["x"])
    reductions(fam, "ce_weight_smooth", ce, {"x": x, "y": y, "weight": w},
               ce_fn(label_smoothing=0.25), args={"label_smoothing": 0.25}, grad=["x"])
    # ignore_index: targets of class 1 are left out
    yi = torch.tensor([1, 0, 1, 3, 2])
    reductions(fam, "ce_ignore", ce, {"x": x, "y": yi}, ce_fn(ignore_index=1),
               args={"ignore_index": 1}, grad=["x"])
    reductions(fam, "ce_ignore_weight_smooth", ce, {"x": x, "y": yi, "weight": w},
               ce_fn(ignore_index=1, label_smoothing=0.2),
               args={"ignore_index": 1, "label_smoothing": 0.2}, grad=["x"])
    # an ignored index beyond the classes (255 with 10 classes, as in segmentation)
    x10 = fam.randn(6, 10)
    y255 = torch.tensor([255, 3, 9, 255, 0, 4])
    w10 = fam.uniform(10, lo=0.2, hi=2.0)
    reductions(fam, "ce_ignore_255", ce, {"x": x10, "y": y255, "weight": w10},
               ce_fn(ignore_index=255), args={"ignore_index": 255}, grad=["x"])
    # every target ignored: mean is 0/0 = NaN, sum 0, none all zeros
    yall = torch.tensor([255, 255, 255])
    reductions(fam, "ce_all_ignored", ce, {"x": fam.randn(3, 10), "y": yall},
               ce_fn(ignore_index=255), args={"ignore_index": 255}, grad=["x"])
    fam.case("ce_all_ignored_smooth_weight_mean", ce,
             {"x": fam.randn(3, 10), "y": yall, "weight": w10},
             lambda x, y, weight: F.cross_entropy(x, y, weight=weight, ignore_index=255,
                                                  label_smoothing=0.1),
             args={"ignore_index": 255, "label_smoothing": 0.1, "reduction": "mean"},
             grad=["x"], **TOL)
    # N-d: [N, C, d1, d2] with targets [N, d1, d2]
    xn, yn = fam.randn(2, 3, 4, 5), fam.randint(2, 4, 5, high=3)
    w3 = fam.uniform(3, lo=0.2, hi=2.0)
    reductions(fam, "ce_nd", ce, {"x": xn, "y": yn}, ce_fn(), grad=["x"])
    yn_ign = yn.clone()
    yn_ign[0, 1, :] = 7
    reductions(fam, "ce_nd_weight_ignore_smooth", ce, {"x": xn, "y": yn_ign, "weight": w3},
               ce_fn(ignore_index=7, label_smoothing=0.1),
               args={"ignore_index": 7, "label_smoothing": 0.1}, grad=["x"])
    x3d, y3d = fam.randn(3, 4, 6), fam.randint(3, 6, high=4)
    reductions(fam, "ce_3d_weight", ce, {"x": x3d, "y": y3d, "weight": w}, ce_fn(),
               grad=["x"])
    # unbatched: [C] with a target []
    reductions(fam, "ce_unbatched", ce, {"x": fam.randn(4), "y": torch.tensor(2)},
               ce_fn(), grad=["x"])
    # probability targets, same shape as the input
    pt = torch.softmax(fam.randn(5, 4), 1)
    reductions(fam, "ce_prob", ce, {"x": x, "t": pt},
               lambda reduction, x, t: F.cross_entropy(x, t, reduction=reduction))
    reductions(fam, "ce_prob_weight_smooth", ce, {"x": x, "t": pt, "weight": w},
               lambda reduction, x, t, weight: F.cross_entropy(
                   x, t, weight=weight, label_smoothing=0.3, reduction=reduction),
               args={"label_smoothing": 0.3}, grad=["x", "t"])
    ptn = torch.softmax(fam.randn(2, 3, 4, 5), 1)
    reductions(fam, "ce_prob_nd", ce, {"x": xn, "t": ptn},
               lambda reduction, x, t: F.cross_entropy(x, t, label_smoothing=0.1,
                                                       reduction=reduction),
               args={"label_smoothing": 0.1})
    # saturated logits (+-100, a gap of 200) and exact ties
    xs = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 100.0], [0.0, 0.0, 0.0],
                       [-100.0, -100.0, -100.0]])
    ys = torch.tensor([1, 0, 2, 0])
    reductions(fam, "ce_saturated_and_ties", ce, {"x": xs, "y": ys}, ce_fn(), grad=["x"])
    fam.case("ce_saturated_smooth_mean", ce, {"x": xs, "y": ys},
             lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1),
             args={"label_smoothing": 0.1, "reduction": "mean"}, grad=["x"], **TOL)
    # PyTorch raises: ignore_index with probability targets; a target of the wrong shape
    fam.case("ce_prob_with_ignore_index", ce, {"x": x, "t": pt},
             lambda x, t: F.cross_entropy(x, t, ignore_index=1),
             args={"ignore_index": 1, "reduction": "mean"}, expect_error=True)
    fam.case("ce_target_shape", ce, {"x": x, "y": fam.randint(4, high=4)},
             lambda x, y: F.cross_entropy(x, y), args={"reduction": "mean"},
             expect_error=True)


def nll_cases(fam):
    logp = torch.log_softmax(fam.randn(6, 5), 1)
    y = fam.randint(6, high=5)
    w = fam.uniform(5, lo=0.2, hi=2.0)

    def nll_fn(**opts):
        def f(reduction, x, y, weight=None):
            return F.nll_loss(x, y, weight=weight, reduction=reduction, **opts)
        return f

    reductions(fam, "nll", "nll", {"x": logp, "y": y}, nll_fn(), grad=["x"])
    reductions(fam, "nll_weight", "nll", {"x": logp, "y": y, "weight": w}, nll_fn(),
               grad=["x"])
    ln = torch.log_softmax(fam.randn(2, 5, 3, 2), 1)
    yn = fam.randint(2, 3, 2, high=5)
    yn[1, 0, 1] = 200
    yn[0, 2, 0] = 200
    reductions(fam, "nll_nd_weight_ignore", "nll", {"x": ln, "y": yn, "weight": w},
               nll_fn(ignore_index=200), args={"ignore_index": 200}, grad=["x"])
    reductions(fam, "nll_all_ignored", "nll",
               {"x": logp[:2], "y": torch.tensor([3, 3]), "weight": w},
               nll_fn(ignore_index=3), args={"ignore_index": 3}, grad=["x"])


def bce_cases(fam):
    # p exactly 0 and 1 with every target kind; the target gradient is +-inf there
    p = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.25, 0.9, 1e-20, 1.0 - 2**-24])
    t = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.3, 0.7, 0.5, 1.0, 0.0, 1.0, 0.0])
    reductions(fam, "bce_edges", "bce", {"p": p, "t": t},
               lambda reduction, p, t: F.binary_cross_entropy(p, t, reduction=reduction))
    pr = torch.sigmoid(fam.randn(3, 4))
    tr = fam.uniform(3, 4, lo=0.0, hi=1.0)
    reductions(fam, "bce_random", "bce", {"p": pr, "t": tr},
               lambda reduction, p, t: F.binary_cross_entropy(p, t, reduction=reduction))
    # through a sigmoid that rounds to exactly 1 (x >= about 17) or underflows
    x = torch.tensor([17.0, 20.0, 30.0, 100.0, -17.0, -30.0, -100.0, 0.0, 3.0, -5.0])
    ts = torch.tensor([1.0, 0.0, 0.3, 0.0, 0.0, 1.0, 0.7, 0.5, 1.0, 0.0])
    reductions(fam, "bce_of_sigmoid", "bce_sigmoid", {"x": x, "t": ts},
               lambda reduction, x, t: F.binary_cross_entropy(torch.sigmoid(x), t,
                                                              reduction=reduction),
               grad=["x"])
    xl = torch.tensor([[-100.0, -20.0, -1.5, 0.0], [2.0, 30.0, 100.0, 0.5]])
    tl = torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 0.0, 0.25]])
    reductions(fam, "bce_with_logits", "bce_with_logits", {"x": xl, "t": tl},
               lambda reduction, x, t: F.binary_cross_entropy_with_logits(
                   x, t, reduction=reduction))
    # outside [0, 1] (or NaN) PyTorch raises; Cinder reports it at the next readback
    for name, (pv, tv) in {"input_above": ([0.5, 1.5], [0.0, 1.0]),
                           "input_below": ([-0.1, 0.5], [0.0, 1.0]),
                           "input_nan": ([float("nan"), 0.5], [0.0, 1.0]),
                           "target_above": ([0.5, 0.5], [0.0, 2.0])}.items():
        fam.case(f"bce_{name}", "bce", {"p": torch.tensor(pv), "t": torch.tensor(tv)},
                 lambda p, t: F.binary_cross_entropy(p, t),
                 args={"reduction": "mean"}, expect_error=True)
    pw = torch.tensor([3.0, 0.5, 1.0, 2.0])
    reductions(fam, "bce_with_logits_pos_weight", "bce_with_logits",
               {"x": xl, "t": tl, "pos_weight": pw},
               lambda reduction, x, t, pos_weight: F.binary_cross_entropy_with_logits(
                   x, t, pos_weight=pos_weight, reduction=reduction), grad=["x", "t"])


def kl_cases(fam):
    logp = torch.log_softmax(fam.randn(3, 5), 1)
    q = torch.softmax(fam.randn(3, 5), 1)
    q[0, 1] = 0.0  # 0 log 0 = 0; its target gradient is NaN in PyTorch
    q[2, 4] = 0.0
    for r in ("mean", "sum", "none", "batchmean"):
        fam.case(f"kl_div_{r}", "kl_div", {"x": logp, "t": q},
                 lambda x, t, r=r: F.kl_div(x, t, reduction=r),
                 args={"reduction": r, "log_target": False}, **TOL)
        fam.case(f"kl_div_log_target_{r}", "kl_div",
                 {"x": logp, "t": torch.log_softmax(fam.randn(3, 5), 1)},
                 lambda x, t, r=r: F.kl_div(x, t, reduction=r, log_target=True),
                 args={"reduction": r, "log_target": True}, **TOL)
    # the target broadcasts over the batch
    fam.case("kl_div_broadcast_batchmean", "kl_div", {"x": logp, "t": q[1]},
             lambda x, t: F.kl_div(x, t, reduction="batchmean"),
             args={"reduction": "batchmean", "log_target": False}, **TOL)
    fam.case("kl_div_nd_batchmean", "kl_div",
             {"x": torch.log_softmax(fam.randn(2, 3, 4), 1),
              "t": torch.softmax(fam.randn(2, 3, 4), 1)},
             lambda x, t: F.kl_div(x, t, reduction="batchmean"),
             args={"reduction": "batchmean", "log_target": False}, **TOL)


def regression_cases(fam):
    a, b = fam.randn(4, 5), fam.randn(4, 5)
    # ties: |d| exactly beta (0.5) and d = 0
    a[0, :3] = torch.tensor([0.75, -0.25, 1.0])
    b[0, :3] = torch.tensor([0.25, 0.25, 1.0])
    for beta in (1.0, 0.5, 0.0):
        reductions(fam, f"smooth_l1_beta{beta}", "smooth_l1", {"a": a, "b": b},
                   lambda reduction, a, b, beta=beta: F.smooth_l1_loss(
                       a, b, beta=beta, reduction=reduction), args={"beta": beta})
    fam.case("smooth_l1_negative_beta", "smooth_l1", {"a": a, "b": b},
             lambda a, b: F.smooth_l1_loss(a, b, beta=-1.0),
             args={"beta": -1.0, "reduction": "mean"}, expect_error=True)
    reductions(fam, "huber_delta0.5", "huber", {"a": a, "b": b},
               lambda reduction, a, b: F.huber_loss(a, b, delta=0.5, reduction=reduction),
               args={"delta": 0.5})
    for name, delta in (("zero", 0.0), ("nan", "nan")):
        fam.case(f"huber_delta_{name}", "huber", {"a": a, "b": b},
                 lambda a, b, d=delta: F.huber_loss(a, b, delta=float(d)),
                 args={"delta": delta, "reduction": "mean"}, expect_error=True)
    reductions(fam, "mse", "mse", {"a": a, "b": b},
               lambda reduction, a, b: F.mse_loss(a, b, reduction=reduction))
    reductions(fam, "l1", "l1", {"a": a, "b": b},
               lambda reduction, a, b: F.l1_loss(a, b, reduction=reduction))


def gaussian_cases(fam):
    x, t = fam.randn(4, 3), fam.randn(4, 3)
    v = fam.uniform(4, 3, lo=0.2, hi=2.0)
    v[0, 0] = 1e-8  # below eps: clamped, and its gradient still flows
    v[1, 2] = 0.0
    g = "gaussian_nll"

    def gfn(full=False, eps=1e-6):
        def f(reduction, x, t, var):
            return F.gaussian_nll_loss(x, t, var, full=full, eps=eps, reduction=reduction)
        return f

    reductions(fam, "gnll_same_shape", g, {"x": x, "t": t, "var": v}, gfn(),
               args={"full": False, "eps": 1e-6}, atol=1e-4, rtol=1e-4)
    reductions(fam, "gnll_full_eps", g, {"x": x, "t": t, "var": v}, gfn(True, 1e-3),
               args={"full": True, "eps": 1e-3})
    # one variance per sample: var one dimension short of the input, or [N, 1]
    v1 = fam.uniform(4, lo=0.2, hi=2.0)
    reductions(fam, "gnll_var_one_dim_short", g, {"x": x, "t": t, "var": v1}, gfn(),
               args={"full": False, "eps": 1e-6})
    reductions(fam, "gnll_var_last_dim_1", g, {"x": x, "t": t, "var": v1[:, None]}, gfn(),
               args={"full": False, "eps": 1e-6})
    # one mismatched dimension of size 1 elsewhere: [2, 1, 4] for [2, 3, 4]
    x3, t3 = fam.randn(2, 3, 4), fam.randn(2, 3, 4)
    reductions(fam, "gnll_var_middle_dim_1", g,
               {"x": x3, "t": t3, "var": fam.uniform(2, 1, 4, lo=0.2, hi=2.0)}, gfn(),
               args={"full": False, "eps": 1e-6})
    neg = v.clone()
    neg[2, 1] = -0.5
    fam.case("gnll_negative_var", g, {"x": x, "t": t, "var": neg},
             lambda x, t, var: F.gaussian_nll_loss(x, t, var),
             args={"full": False, "eps": 1e-6, "reduction": "mean"}, expect_error=True)
    nanv = v.clone()
    nanv[2, 1] = float("nan")
    fam.case("gnll_nan_var", g, {"x": x, "t": t, "var": nanv},
             lambda x, t, var: F.gaussian_nll_loss(x, t, var, reduction="none"),
             args={"full": False, "eps": 1e-6, "reduction": "none"})
    fam.case("gnll_var_wrong_shape", g,
             {"x": x, "t": t, "var": fam.uniform(3, lo=0.2, hi=2.0)},
             lambda x, t, var: F.gaussian_nll_loss(x, t, var),
             args={"full": False, "eps": 1e-6, "reduction": "mean"}, expect_error=True)


def metric_cases(fam):
    a, p, n = fam.randn(5, 4), fam.randn(5, 4), fam.randn(5, 4)
    n[0] = a[0] + 3.0  # a triplet with zero loss
    specs = [
        ("triplet", {}),
        ("triplet_p1", {"p": 1.0}),
        ("triplet_p3", {"p": 3.0}),
        ("triplet_p_inf", {"p": float("inf")}),
        ("triplet_swap", {"swap": True}),
        ("triplet_eps0_margin0.5", {"eps": 0.0, "margin": 0.5}),
    ]
    for name, opts in specs:
        args = {k: (str(v) if v == float("inf") else v) for k, v in opts.items()}
        reductions(fam, name, "triplet_margin", {"a": a, "p": p, "n": n},
                   lambda reduction, a, p, n, opts=opts: F.triplet_margin_loss(
                       a, p, n, reduction=reduction, **opts), args=args)
    fam.case("triplet_unbatched_swap", "triplet_margin",
             {"a": fam.randn(6), "p": fam.randn(6), "n": fam.randn(6)},
             lambda a, p, n: F.triplet_margin_loss(a, p, n, swap=True),
             args={"swap": True, "reduction": "mean"}, **TOL)
    # exactly at the hinge: d(a, p) = 5, d(a, n) = 10, margin 5; PyTorch's gradient is 0
    fam.case("triplet_at_hinge", "triplet_margin",
             {"a": torch.zeros(1, 2), "p": torch.tensor([[3.0, 4.0]]),
              "n": torch.tensor([[6.0, 8.0]])},
             lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=5.0, eps=0.0),
             args={"margin": 5.0, "eps": 0.0, "reduction": "mean"}, **TOL)
    fam.case("triplet_margin_zero", "triplet_margin", {"a": a, "p": p, "n": n},
             lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=0.0),
             args={"margin": 0.0, "reduction": "mean"}, expect_error=True)

    x1, x2 = fam.randn(6, 3), fam.randn(6, 3)
    x2[1] = x1[1] * 2.0  # cos = 1
    y = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, 0.0])
    for margin in (0.0, 0.5):
        reductions(fam, f"cosine_margin{margin}", "cosine_embedding",
                   {"x1": x1, "x2": x2, "y": y},
                   lambda reduction, x1, x2, y, margin=margin: F.cosine_embedding_loss(
                       x1, x2, y, margin=margin, reduction=reduction),
                   args={"margin": margin}, grad=["x1", "x2"])
    # orthogonal pair, target -1, margin 0: cos - margin = 0 exactly, the hinge
    fam.case("cosine_at_hinge", "cosine_embedding",
             {"x1": torch.tensor([[1.0, 0.0], [0.0, 2.0]]),
              "x2": torch.tensor([[0.0, 1.0], [3.0, 0.0]]), "y": torch.tensor([-1.0, -1.0])},
             lambda x1, x2, y: F.cosine_embedding_loss(x1, x2, y, margin=0.0),
             args={"margin": 0.0, "reduction": "mean"}, grad=["x1", "x2"], **TOL)
    fam.case("cosine_unbatched", "cosine_embedding",
             {"x1": fam.randn(5), "x2": fam.randn(5), "y": torch.tensor(-1.0)},
             lambda x1, x2, y: F.cosine_embedding_loss(x1, x2, y, margin=-0.5),
             args={"margin": -0.5, "reduction": "mean"}, grad=["x1", "x2"], **TOL)

    r1, r2 = fam.randn(7), fam.randn(7)
    r2[2] = r1[2]  # a tie at the hinge with margin 0: PyTorch's gradient is 0 there
    yr = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0])
    for margin in (0.0, 0.3):
        reductions(fam, f"margin_ranking{margin}", "margin_ranking",
                   {"x1": r1, "x2": r2, "y": yr},
                   lambda reduction, x1, x2, y, margin=margin: F.margin_ranking_loss(
                       x1, x2, y, margin=margin, reduction=reduction),
                   args={"margin": margin}, grad=["x1", "x2"])


def _scalar_safe_randn(fam):
    """common.Family.randn(*shape) fails for shape () (torch.randn() wants a size), which a
    reduced loss's cotangent has; the same draws, with the shape passed as a tuple."""
    def randn(*shape, scale=1.0):
        return torch.randn(shape, generator=fam.gen, dtype=torch.float32) * scale
    fam.randn = randn


def build(fam):
    _scalar_safe_randn(fam)
    cross_entropy_cases(fam)
    nll_cases(fam)
    bce_cases(fam)
    kl_cases(fam)
    regression_cases(fam)
    gaussian_cases(fam)
    metric_cases(fam)
    style_cases(fam)


def gram(x):
    """The Gram matrix as the PyTorch neural-style tutorial computes it, per image."""
    f = x
    if f.dim() == 3:
        c, h, w = f.shape
        m = f.reshape(c, h * w)
        return m @ m.T / (c * h * w)
    n, c, h, w = f.shape
    m = f.reshape(n, c, h * w)
    return torch.bmm(m, m.transpose(1, 2)) / (c * h * w)


def style_cases(fam):
    fam.case("gram_matrix_batched", "gram_matrix", {"x": fam.randn(2, 3, 4, 5)}, gram, **TOL)
    fam.case("gram_matrix_one_map", "gram_matrix", {"x": fam.randn(4, 3, 3)}, gram, **TOL)
    fam.case("gram_matrix_bad_rank", "gram_matrix", {"x": fam.randn(3, 4)},
             gram, expect_error=True)
    f, t = fam.randn(2, 3, 4, 4), fam.randn(2, 3, 3)
    reductions(fam, "style_loss", "style_loss", {"x": f, "t": t},
               lambda reduction, x, t: F.mse_loss(gram(x), t, reduction=reduction))
    t1 = fam.randn(3, 3)
    fam.case("style_loss_one_target", "style_loss", {"x": f, "t": t1},
             lambda x, t: F.mse_loss(gram(x), t.expand(2, 3, 3)), args={"reduction": "mean"},
             **TOL)
