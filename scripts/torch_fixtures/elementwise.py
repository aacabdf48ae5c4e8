"""Elementwise ops: unary maps, binary ops with broadcasting, scalar forms, where, and their
edge values (NaN, +-inf, ties, saturation, empty and size-1 dims)."""

import torch

NAN = float("nan")
INF = float("inf")


def build(fam):
    x = torch.tensor([NAN, -1.0, 3.0, 0.0, -INF, INF, 2.0, NAN])
    fam.case("relu_nan", "relu", {"x": x}, lambda x: torch.relu(x))
    fam.case("relu_random", "relu", {"x": fam.away_from(5, 7)}, lambda x: torch.relu(x))
