"""Reductions along an axis, over several axes and over the whole tensor, softmax and
log-softmax: every axis and keepdim, ties, NaN and infinities, size-1 and empty dims."""

import warnings

import torch

warnings.filterwarnings("ignore", message="var\\(\\): degrees of freedom")

NAN = float("nan")
INF = float("inf")

AXIS_OPS = {
    "sum_axis": lambda x, axis, keepdim: x.sum(axis, keepdim=keepdim),
    "mean_axis": lambda x, axis, keepdim: x.mean(axis, keepdim=keepdim),
    "var_axis": lambda x, axis, keepdim: x.var(axis, unbiased=True, keepdim=keepdim),
    "var_axis_biased": lambda x, axis, keepdim: x.var(axis, unbiased=False, keepdim=keepdim),
    "amax_axis": lambda x, axis, keepdim: x.amax(axis, keepdim=keepdim),
    "amin_axis": lambda x, axis, keepdim: x.amin(axis, keepdim=keepdim),
    "logsumexp_axis": lambda x, axis, keepdim: x.logsumexp(axis, keepdim=keepdim),
    "max_axis": lambda x, axis, keepdim: tuple(torch.max(x, axis, keepdim=keepdim)),
    "min_axis": lambda x, axis, keepdim: tuple(torch.min(x, axis, keepdim=keepdim)),
    "argmax_axis": lambda x, axis, keepdim: x.argmax(axis, keepdim=keepdim),
    "argmin_axis": lambda x, axis, keepdim: x.argmin(axis, keepdim=keepdim),
}

ALL_OPS = {
    "sum_all": lambda x: x.sum(),
    "mean_all": lambda x: x.mean(),
    "var_all": lambda x: x.var(unbiased=True),
    "var_all_biased": lambda x: x.var(unbiased=False),
    "max_all": lambda x: x.max(),
    "min_all": lambda x: x.min(),
    "logsumexp_all": lambda x: x.logsumexp(dim=tuple(range(x.dim()))),
    "argmax_all": lambda x: x.argmax(),
    "argmin_all": lambda x: x.argmin(),
}

NEEDS_ELEMENTS = ("amax_axis", "amin_axis", "max_axis", "min_axis", "argmax_axis",
                  "argmin_axis")


def build(fam):
    x = fam.uniform(3, 4, 5)
    for name, fn in AXIS_OPS.items():
        for axis in (0, 1, 2, -1):
            for keepdim in (False, True):
                if axis == -1 and not keepdim:
                    continue
                fam.case(f"{name}_{axis}_{int(keepdim)}", name, {"x": x},
                         lambda x, fn=fn, a=axis, k=keepdim: fn(x, a, k),
                         args={"axis": axis, "keepdim": keepdim}, atol=1e-6, rtol=2e-5)
        # a long axis (the tree path on CPU adapters: over 256 elements)
        long = fam.uniform(3, 300)
        fam.case(f"{name}_long", name, {"x": long}, lambda x, fn=fn: fn(x, 1, False),
                 args={"axis": 1, "keepdim": False}, atol=1e-5, rtol=1e-4)
        # NaN first / middle / last, two NaNs, infinities, ties
        edge = torch.tensor([
            [NAN, 1.0, 2.0, 3.0, 0.5],
            [1.0, 2.0, NAN, 3.0, 0.5],
            [1.0, 2.0, 3.0, 0.5, NAN],
            [1.0, NAN, 2.0, NAN, 0.5],
            [1.0, 3.0, 3.0, -INF, 3.0],
            [-INF, -INF, -INF, -INF, -INF],
            [INF, 1.0, INF, 0.0, 2.0],
        ])
        grad = None if name not in ("logsumexp_axis", "var_axis", "var_axis_biased") else []
        fam.case(f"{name}_edges", name, {"x": edge}, lambda x, fn=fn: fn(x, 1, False),
                 args={"axis": 1, "keepdim": False}, grad=grad)
        fam.case(f"{name}_edges_axis0", name, {"x": edge[:4]},
                 lambda x, fn=fn: fn(x, 0, True), args={"axis": 0, "keepdim": True},
                 grad=grad)
        # size-1 axis, and an empty axis (an error where there is no identity)
        one = fam.uniform(4, 1, 3)
        fam.case(f"{name}_size1", name, {"x": one}, lambda x, fn=fn: fn(x, 1, False),
                 args={"axis": 1, "keepdim": False})
        empty = torch.zeros(2, 0, 3)
        fam.case(f"{name}_empty_axis", name, {"x": empty}, lambda x, fn=fn: fn(x, 1, False),
                 args={"axis": 1, "keepdim": False}, expect_error=name in NEEDS_ELEMENTS)
        fam.case(f"{name}_empty_other", name, {"x": empty}, lambda x, fn=fn: fn(x, 2, False),
                 args={"axis": 2, "keepdim": False})
    for name, fn in ALL_OPS.items():
        fam.case(f"{name}_random", name, {"x": x}, fn, atol=1e-6, rtol=2e-5)
        if name in ("sum_all", "max_all", "argmin_all", "logsumexp_all"):
            # more than one 16384-element chunk: the multi-pass tree on CPU adapters
            fam.case(f"{name}_long", name, {"x": fam.uniform(17001)}, fn, atol=1e-5,
                     rtol=1e-4, grad=[])
        ties = torch.tensor([[1.0, 3.0, 3.0], [2.0, 3.0, -1.0]])
        fam.case(f"{name}_ties", name, {"x": ties}, fn)
        nan = torch.tensor([[1.0, NAN, 3.0], [NAN, 0.0, 2.0]])
        fam.case(f"{name}_nan", name, {"x": nan}, fn,
                 grad=[] if name.startswith(("var", "logsumexp")) else None)
        fam.case(f"{name}_inf", name, {"x": torch.tensor([1.0, INF, -INF, 2.0])}, fn,
                 grad=[] if name.startswith(("var", "logsumexp", "sum", "mean")) else None)
        empty = torch.zeros(0, 3)
        fam.case(f"{name}_empty", name, {"x": empty}, fn,
                 expect_error=name.startswith(("max", "min", "arg")))
    fam.case("var_one_element", "var_all", {"x": torch.tensor([2.0])}, ALL_OPS["var_all"])
    # sum over several axes
    y = fam.uniform(2, 3, 4, 5)
    for axes in ([0, 2], [1, 3], [-1, 0], [0, 1, 2, 3], [2]):
        for keepdim in (False, True):
            fam.case(f"sum_axes_{'_'.join(map(str, axes))}_{int(keepdim)}", "sum_axes",
                     {"x": y}, lambda x, a=axes, k=keepdim: x.sum(a, keepdim=k),
                     args={"axes": axes, "keepdim": keepdim}, atol=1e-6, rtol=2e-5)
    # softmax and log-softmax
    for name, fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
        for axis in (0, 1, -1):
            fam.case(f"{name}_{axis}", name, {"x": fam.uniform(3, 4, 5, lo=-3, hi=3)},
                     lambda x, fn=fn, a=axis: fn(x, a), args={"axis": axis}, atol=1e-6,
                     rtol=2e-5)
        fam.case(f"{name}_long", name, {"x": fam.uniform(2, 300, lo=-5, hi=5)},
                 lambda x, fn=fn: fn(x, 1), args={"axis": 1}, atol=1e-6, rtol=1e-4)
        big = torch.tensor([[1000.0, 0.0, -1000.0], [1e-3, 2e-3, 3e-3]])
        fam.case(f"{name}_large", name, {"x": big}, lambda x, fn=fn: fn(x, 1),
                 args={"axis": 1}, atol=1e-6, rtol=1e-4)
        edge = torch.tensor([[NAN, 1.0, 2.0], [INF, 1.0, 0.0], [-INF, 1.0, 0.0],
                             [-INF, -INF, -INF]])
        fam.case(f"{name}_edges", name, {"x": edge}, lambda x, fn=fn: fn(x, 1),
                 args={"axis": 1}, grad=[])
        fam.case(f"{name}_size1", name, {"x": fam.uniform(3, 1)}, lambda x, fn=fn: fn(x, 1),
                 args={"axis": 1})
