"""Elementwise ops: unary maps and activations, binary ops with broadcasting, scalar forms,
where, and their edge values (NaN, +-inf, signed zeros, ties, saturation, empty and size-1
dims). Comparisons and isnan give 0/1 floats in Cinder, so their PyTorch outputs are cast.
"""

import torch
import torch.nn.functional as F

NAN = float("nan")
INF = float("inf")

# Edge values every unary op sees (forward and gradient).
EDGES = [NAN, -INF, INF, 0.0, -0.0, 1.0, -1.0, 100.0, -100.0, 1e-20, 3.0, -3.0, NAN]

# name -> (PyTorch function, args, domain of the random input, kinks to stay away from)
UNARY = {
    "neg": (torch.neg, {}, (-2, 2), []),
    "abs": (torch.abs, {}, (-2, 2), [0.0]),
    "exp": (torch.exp, {}, (-3, 3), []),
    "log": (torch.log, {}, (0.05, 4), []),
    "sqrt": (torch.sqrt, {}, (0.05, 4), []),
    "rsqrt": (torch.rsqrt, {}, (0.05, 4), []),
    "sin": (torch.sin, {}, (-4, 4), []),
    "cos": (torch.cos, {}, (-4, 4), []),
    "relu": (torch.relu, {}, (-2, 2), [0.0]),
    "leaky_relu": (lambda x, a: F.leaky_relu(x, a), {"a": 0.1}, (-2, 2), [0.0]),
    "elu": (lambda x, a: F.elu(x, a), {"a": 0.7}, (-2, 2), [0.0]),
    "sigmoid": (torch.sigmoid, {}, (-6, 6), []),
    "tanh": (torch.tanh, {}, (-4, 4), []),
    "gelu": (F.gelu, {}, (-4, 4), []),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), {}, (-4, 4), []),
    "silu": (F.silu, {}, (-6, 6), []),
    "mish": (F.mish, {}, (-6, 6), []),
    "hardsigmoid": (F.hardsigmoid, {}, (-5, 5), [-3.0, 3.0]),
    "hardswish": (F.hardswish, {}, (-5, 5), [-3.0, 3.0]),
    "hardtanh": (lambda x, lo, hi: F.hardtanh(x, lo, hi), {"lo": -0.5, "hi": 0.75}, (-2, 2),
                 [-0.5, 0.75]),
    "relu6": (F.relu6, {}, (-2, 8), [0.0, 6.0]),
    "softplus": (F.softplus, {}, (-6, 6), []),
    "square": (torch.square, {}, (-2, 2), []),
    "clamp": (lambda x, lo, hi: torch.clamp(x, lo, hi), {"lo": -0.5, "hi": 0.75}, (-2, 2),
              [-0.5, 0.75]),
    "clamp_min": (lambda x, lo: torch.clamp(x, min=lo), {"lo": 0.25}, (-2, 2), [0.25]),
    "powf": (lambda x, e: torch.pow(x, e), {"e": 2.5}, (0.1, 3), []),
    "powf_int": (lambda x, e: torch.pow(x, e), {"e": 3.0}, (-2, 2), []),
    "recip": (torch.reciprocal, {}, (0.2, 3), []),
    "sign": (torch.sign, {}, (-2, 2), [0.0]),
    "isnan": (lambda x: torch.isnan(x).float(), {}, (-2, 2), []),
    "affine": (lambda x, a, b: a * x + b, {"a": -1.5, "b": 0.25}, (-2, 2), []),
}

BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "pow": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "eq": lambda a, b: (a == b).float(),
    "ne": lambda a, b: (a != b).float(),
    "lt": lambda a, b: (a < b).float(),
    "le": lambda a, b: (a <= b).float(),
    "gt": lambda a, b: (a > b).float(),
    "ge": lambda a, b: (a >= b).float(),
}

SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((0, 3), (3,)),
          ((1, 5), (1, 1))]


def call(fn, args):
    return lambda x: fn(x, **args)


def build(fam):
    edges = torch.tensor(EDGES)
    for name, (fn, args, (lo, hi), kinks) in UNARY.items():
        tol = dict(atol=1e-6, rtol=2e-5)
        if name in ("gelu", "gelu_tanh", "mish", "silu", "softplus"):
            tol = dict(atol=2e-6, rtol=1e-4)
        x = fam.away_from(4, 7, points=kinks or (1e9,), gap=0.05, lo=lo, hi=hi)
        fam.case(f"{name}_random", name, {"x": x}, call(fn, args), args=args, **tol)
        fam.case(f"{name}_edges", name, {"x": edges}, call(fn, args), args=args, **tol)
        fam.case(f"{name}_empty", name, {"x": torch.zeros(0, 3)}, call(fn, args), args=args)
    # log Gamma and digamma: positive and negative arguments (away from the poles), the
    # edge values (the poles themselves, +-0, +-inf, NaN)
    poles = [float(-i) for i in range(0, 8)]
    for name, fn in (("lgamma", torch.lgamma), ("digamma", torch.digamma)):
        x = fam.uniform(4, 7, lo=0.1, hi=12.0)
        fam.case(f"{name}_random", name, {"x": x}, fn, atol=2e-5, rtol=1e-4)
        x = fam.away_from(3, 5, points=poles, gap=0.05, lo=-6.0, hi=-0.1)
        fam.case(f"{name}_negative", name, {"x": x}, fn, atol=1e-4, rtol=1e-3)
        # digamma's gradient (trigamma) at the poles is +inf in Cinder and a large finite
        # number from PyTorch's f32 sin(pi x) there, so its edge case compares the values only
        fam.case(f"{name}_edges", name, {"x": edges}, fn, atol=2e-5, rtol=1e-4,
                 grad=[] if name == "digamma" else None)
        fam.case(f"{name}_empty", name, {"x": torch.zeros(0, 3)}, fn)
    # PyTorch's float32 CPU GELU gives NaN at +inf (its float64 gives the limit, +inf)
    fam.deviate("gelu_edges", "out0", EDGES.index(INF), INF,
                "PyTorch's f32 CPU gelu(+inf) is NaN, an artifact of its vectorized erf; its "
                "f64 gelu and the limit are +inf, which Cinder gives")
    # values exactly at the kinks: PyTorch's gradient conventions there
    at = torch.tensor([-3.0, -0.5, 0.0, 0.25, 0.75, 3.0, 6.0, -1.0, 1.0])
    for name in ("relu", "abs", "sign", "leaky_relu", "elu", "hardtanh", "clamp", "clamp_min",
                 "hardsigmoid", "hardswish", "relu6"):
        fn, args, _, _ = UNARY[name]
        fam.case(f"{name}_at_kinks", name, {"x": at}, call(fn, args), args=args)
    # hardtanh and clamp with NaN and infinite bounds
    fam.case("clamp_inf_bounds", "clamp", {"x": edges}, lambda x: torch.clamp(x, -INF, 2.0),
             args={"lo": "-inf", "hi": 2.0})
    # sigmoid and tanh saturate to exactly 0 / 1 / -1 in f32
    sat = torch.tensor([-200.0, -88.0, -20.0, -17.0, 17.0, 20.0, 88.0, 200.0])
    for name in ("sigmoid", "tanh", "softplus", "exp", "gelu", "silu", "mish"):
        fn, args, _, _ = UNARY[name]
        fam.case(f"{name}_saturated", name, {"x": sat}, call(fn, args), args=args, atol=1e-6,
                 rtol=1e-4)
    # pow with negative bases, zero and NaN exponents
    base = torch.tensor([-2.0, -2.0, 0.0, 0.0, 3.0, 1.0, NAN, -1.0])
    for e in (2.0, 3.0, 0.5, -1.0, 0.0, -2.0):
        fam.case(f"powf_edges_{e}", "powf", {"x": base}, lambda x, e=e: torch.pow(x, e),
                 args={"e": e}, grad=[])

    # binary ops over broadcast shapes
    for name, fn in BINARY.items():
        for i, (sa, sb) in enumerate(SHAPES):
            lo = 0.2 if name in ("pow", "div") else -2.0
            a = fam.uniform(*sa, lo=lo, hi=2.0)
            b = fam.uniform(*sb, lo=0.3 if name == "div" else -2.0, hi=2.0)
            if name == "pow":
                b = fam.uniform(*sb, lo=-1.5, hi=2.5)
            fam.case(f"{name}_shapes{i}", name, {"a": a, "b": b},
                     lambda a, b, fn=fn: fn(a, b), atol=1e-6, rtol=2e-5)
        # ties and NaN on either side
        a = torch.tensor([1.0, NAN, 2.0, 3.0, -INF, INF, 0.0, NAN, -0.0])
        b = torch.tensor([1.0, 1.0, NAN, -1.0, -INF, 5.0, -0.0, NAN, 0.0])
        fam.case(f"{name}_edges", name, {"a": a, "b": b}, lambda a, b, fn=fn: fn(a, b),
                 grad=[] if name == "pow" else None)
    # scalar forms: x op s and s op x
    for name in ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt",
                 "le", "gt", "ge"):
        fn = BINARY[name]
        x = torch.tensor([1.0, NAN, 0.75, -2.0, INF, -INF, 0.0, 3.5])
        if name == "pow":
            x = fam.uniform(2, 3, lo=0.2, hi=2.0)
        for first in (False, True):
            s = 0.75

            def f(x, fn=fn, first=first):
                st = torch.tensor(s)
                return fn(st, x) if first else fn(x, st)

            fam.case(f"{name}_scalar{'_first' if first else ''}", f"{name}_scalar",
                     {"x": x}, f, args={"s": s, "first": first},
                     grad=[] if name == "pow" and first else None)
    # where with broadcasting (NaN condition counts as true, as bool(NaN) in PyTorch)
    cond = torch.tensor([[1.0, 0.0, NAN, -0.0], [0.0, 2.0, 0.0, 1.0]])
    a = fam.uniform(2, 4)
    b = fam.uniform(4)
    fam.case("where", "where", {"cond": cond, "a": a, "b": b},
             lambda cond, a, b: torch.where(cond != 0, a, b), grad=["a", "b"])
    fam.case("broadcast_to", "broadcast_to", {"x": fam.uniform(3, 1)},
             lambda x: x.broadcast_to(2, 3, 4), args={"shape": [2, 3, 4]})
    # PReLU: a shared slope and one per channel
    x = fam.away_from(2, 3, 4, points=(0.0,))
    fam.case("prelu_channels", "prelu", {"x": x, "w": torch.tensor([0.25, -0.5, 0.1])},
             lambda x, w: F.prelu(x, w))
    fam.case("prelu_shared", "prelu", {"x": x, "w": torch.tensor([0.3])},
             lambda x, w: F.prelu(x, w))
    fam.case("prelu_edges", "prelu",
             {"x": torch.tensor([[NAN, -INF, 0.0, 2.0]]), "w": torch.tensor([0.25])},
             lambda x, w: F.prelu(x, w))
