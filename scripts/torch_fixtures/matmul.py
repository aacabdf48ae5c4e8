"""torch.matmul with broadcast batches, vectors and transposes, F.linear (plain and followed
by relu), and the Linear layer."""

import torch
import torch.nn.functional as F

SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((1, 1, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 5)),
    ((1, 4), (4, 1)),
    ((3, 0), (0, 4)),
    ((17, 33), (33, 9)),
]


def build(fam):
    for i, (sa, sb) in enumerate(SHAPES):
        a, b = fam.uniform(*sa), fam.uniform(*sb)
        fam.case(f"matmul_{i}", "matmul", {"a": a, "b": b}, lambda a, b: torch.matmul(a, b),
                 atol=1e-5, rtol=1e-5)
    # transpose flags: op(a) @ op(b) with op = .mT
    for ta in (False, True):
        for tb in (False, True):
            a = fam.uniform(*((2, 5, 3) if ta else (2, 3, 5)))
            b = fam.uniform(*((4, 5) if tb else (5, 4)))
            fam.case(f"matmul_t_{int(ta)}{int(tb)}", "matmul_t", {"a": a, "b": b},
                     lambda a, b, ta=ta, tb=tb: torch.matmul(a.mT if ta else a,
                                                             b.mT if tb else b),
                     args={"ta": ta, "tb": tb}, atol=1e-5, rtol=1e-5)
    for name, (sa, sb) in {"inner": ((3, 4), (5, 6)), "batch": ((2, 3, 4), (3, 4, 5)),
                           "scalar": ((), (3,))}.items():
        fam.case(f"matmul_bad_{name}", "matmul", {"a": fam.uniform(*sa), "b": fam.uniform(*sb)},
                 lambda a, b: torch.matmul(a, b), expect_error=True)
    # F.linear and relu(F.linear) (Cinder fuses both into one product): leading dimensions,
    # no bias, an empty inner dimension, and pre-activations of both signs.
    for i, (sx, out, bias) in enumerate([((5, 6), 4, True), ((2, 3, 6), 4, True),
                                         ((5, 6), 3, False), ((4, 0), 3, True),
                                         ((1, 6), 1, True)]):
        x = fam.uniform(*sx)
        w = fam.uniform(out, sx[-1])
        inputs = {"x": x, "w": w}
        if bias:
            inputs["b"] = fam.uniform(out)
        fam.case(f"linear_{i}", "linear", inputs,
                 lambda x, w, b=None: F.linear(x, w, b), atol=1e-5, rtol=1e-5)
        fam.case(f"linear_relu_{i}", "linear_relu", inputs,
                 lambda x, w, b=None: torch.relu(F.linear(x, w, b)), atol=1e-5, rtol=1e-5)
    fam.case("linear_bad_in", "linear", {"x": fam.uniform(5, 6), "w": fam.uniform(4, 5)},
             lambda x, w: F.linear(x, w), expect_error=True)
    fam.case("linear_bad_bias", "linear_relu",
             {"x": fam.uniform(5, 6), "w": fam.uniform(4, 6), "b": fam.uniform(3)},
             lambda x, w, b: F.linear(x, w, b), expect_error=True)
    # nn.Linear, loaded by PyTorch's names, on 2-D and 3-D input, with and without bias
    torch.manual_seed(1)
    for bias in (True, False):
        lin = torch.nn.Linear(6, 4, bias=bias)
        for shape in ((5, 6), (2, 3, 6)):
            x = fam.uniform(*shape).requires_grad_(True)
            out = lin(x)
            cot = fam.randn(*out.shape)
            lin.zero_grad()
            (out * cot).sum().backward()
            t = {"weight": lin.weight, "x": x, "cot": cot, "expect.out": out,
                 "expect.grad.x": x.grad, "expect.grad.weight": lin.weight.grad}
            if bias:
                t.update({"bias": lin.bias, "expect.grad.bias": lin.bias.grad})
            fam.custom(f"linear_{int(bias)}_{len(shape)}d", "Linear", t,
                       args={"in": 6, "out": 4, "bias": bias}, atol=1e-5, rtol=1e-5)
