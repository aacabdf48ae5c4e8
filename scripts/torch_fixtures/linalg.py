"""The small dense linear algebra of the classical pipelines (device ops, no autograd):
Cholesky, triangular solves and inverses, Cholesky solves, symmetric eigendecomposition,
orthonormal bases, diagonals and the non-finite mask. Eigenvectors and orthonormal bases
are unique up to the sign of each column: the runner aligns the signs before comparing."""

import torch


def spd(fam, *batch, n):
    a = fam.uniform(*batch, n, n)
    return a @ a.mT + n * torch.eye(n)


def build(fam):
    for i, shape in enumerate([(4,), (3, 5)]):
        a = spd(fam, *shape[:-1], n=shape[-1])
        fam.case(f"cholesky_{i}", "cholesky", {"a": a}, lambda a: torch.linalg.cholesky(a),
                 grad=[],
                 atol=1e-5, rtol=1e-5)
    a = spd(fam, 2, n=4)
    l = torch.linalg.cholesky(a)
    rhs = fam.uniform(2, 4, 3)
    for lower in (True, False):
        t = l if lower else l.mT
        for trans in (False, True):
            fam.case(f"tri_solve_{int(lower)}{int(trans)}", "tri_solve", {"t": t, "rhs": rhs},
                     lambda t, rhs, lower=lower, trans=trans: torch.linalg.solve_triangular(
                         t.mT if trans else t, rhs, upper=(lower == trans)),
                     args={"lower": lower, "transpose": trans}, grad=[], atol=1e-5, rtol=1e-4)
        fam.case(f"tri_inverse_{int(lower)}", "tri_inverse", {"t": t},
                 lambda t: torch.linalg.inv(t), args={"lower": lower}, grad=[], atol=1e-5,
                 rtol=1e-4)
    fam.case("cholesky_solve", "cholesky_solve", {"l": l, "rhs": rhs},
             lambda l, rhs: torch.cholesky_solve(rhs, l), grad=[], atol=1e-5, rtol=1e-4)
    s = spd(fam, 2, n=5) - 3 * torch.eye(5)
    w, v = torch.linalg.eigh(s)
    fam.custom("sym_eig", "sym_eig",
               {"a": s, "expect.w": w.flip(-1), "expect.v": v.flip(-1)}, atol=1e-4,
               rtol=1e-4)
    m = fam.uniform(6, 3)
    q, _ = torch.linalg.qr(m)
    fam.custom("orthonormalize", "orthonormalize", {"a": m, "expect.q": q}, atol=1e-5,
               rtol=1e-4)
    fam.case("diagonal", "diagonal", {"a": fam.uniform(2, 4, 4)},
             lambda a: torch.diagonal(a, dim1=-2, dim2=-1), grad=[])
    edge = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.0])
    fam.case("nonfinite_mask", "nonfinite_mask", {"x": edge},
             lambda x: (~torch.isfinite(x)).float(), grad=[])
