"""Ops that change only the gradient: grad_reverse, the gradient-reversal layer of DANN
(PyTorch has no built-in; this is the usual autograd.Function)."""

import torch


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.neg() * ctx.lam, None


def build(fam):
    x = fam.uniform(3, 4)
    for name, lam in (("one", 1.0), ("quarter", 0.25), ("zero", 0.0), ("negative", -2.0)):
        fam.case(f"grad_reverse_{name}", "grad_reverse", {"x": x},
                 lambda x, lam=lam: GradReverse.apply(x, lam), args={"lambda": lam})
    # inside a composition: the reversed gradient flows on through tanh and a product
    w = fam.uniform(3, 4)
    fam.case("grad_reverse_composed", "grad_reverse_composed", {"x": x, "w": w},
             lambda x, w: torch.tanh(GradReverse.apply(x * w, 0.5)) * w,
             args={"lambda": 0.5})
