"""Shared machinery of the PyTorch fixture generator (see main.py).

A family collects cases and writes them to tests/fixtures/<family>.safetensors. Every
tensor of case C is stored as "C/<key>"; the case's description is the JSON string under
the metadata key C:

    {"op": "relu", "kind": "op", "inputs": ["x"], "grad": ["x"], "args": {...},
     "atol": 1e-6, "rtol": 1e-5, "outputs": 1, "expect_error": false}

Keys of an "op" case: the inputs by name, "out0", "out1", ... (the op's outputs, in
order), "cot0", ... (the cotangent each float output is multiplied by before summing, so
gradients are of sum_i <out_i, cot_i>), and "grad.<input>" for every input in "grad"
(zeros where PyTorch gives None). Cases of kind "custom" (modules, optimizers, schedules)
store what their family's Rust runner reads; every tensor whose key starts with "expect."
is a value the runner must reproduce.

Integer tensors are stored as I64 (PyTorch's index dtype); Cinder reads them as u32.
"""

import json
import math

import torch
from safetensors.torch import save_file

F32 = torch.float32


class Family:
    """The cases of one fixture file."""

    def __init__(self, name, seed=0):
        self.name = name
        self.tensors = {}
        self.meta = {}
        self.gen = torch.Generator().manual_seed(seed)

    # ---- random data -------------------------------------------------------------
    def randn(self, *shape, scale=1.0):
        return torch.randn(tuple(shape), generator=self.gen, dtype=F32) * scale

    def uniform(self, *shape, lo=-1.0, hi=1.0):
        return torch.rand(tuple(shape), generator=self.gen, dtype=F32) * (hi - lo) + lo

    def randint(self, *shape, high):
        return torch.randint(0, high, tuple(shape), generator=self.gen, dtype=torch.int64)

    def away_from(self, *shape, points=(0.0,), gap=0.05, lo=-2.0, hi=2.0):
        """Uniform values at least `gap` away from every kink in `points`."""
        x = self.uniform(*shape, lo=lo, hi=hi)
        for p in points:
            near = (x - p).abs() < gap
            x = torch.where(near, x + 2 * gap * torch.sign(x - p + 1e-12), x)
        return x

    # ---- cases -------------------------------------------------------------------
    def _put(self, case, key, t):
        if not isinstance(t, torch.Tensor):
            t = torch.tensor(t)
        if t.dtype.is_floating_point:
            t = t.detach().to(F32)
        else:
            t = t.to(torch.int64)
        self.tensors[f"{case}/{key}"] = t.contiguous().clone()

    def _check_name(self, name):
        if "/" in name or name in self.meta:
            raise ValueError(f"{self.name}: bad or repeated case name {name!r}")

    def case(self, name, op, inputs, fn, args=None, grad=None, atol=1e-6, rtol=1e-5,
             expect_error=False, **extra):
        """An op case: `fn(**inputs)` gives one tensor or a tuple; gradients of
        sum_i <out_i, cot_i> with respect to the inputs named in `grad` (default: every
        float input)."""
        self._check_name(name)
        args = args or {}
        if grad is None:
            grad = [k for k, v in inputs.items() if v.dtype.is_floating_point]
        leaves = {}
        for k, v in inputs.items():
            v = v.detach().clone()
            if k in grad:
                v.requires_grad_(True)
            leaves[k] = v
        meta = {"op": op, "kind": "op", "inputs": list(inputs), "grad": list(grad),
                "args": args, "atol": atol, "rtol": rtol, "expect_error": expect_error}
        meta.update(extra)
        for k, v in inputs.items():
            self._put(name, k, v)
        if expect_error:
            try:
                fn(**leaves)
            except Exception:  # noqa: BLE001 - any error is what PyTorch raises here
                meta["outputs"] = 0
                meta["grad"] = []
                self.meta[name] = json.dumps(meta)
                return
            raise AssertionError(f"{self.name}/{name}: PyTorch did not raise")
        out = fn(**leaves)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        meta["outputs"] = len(outs)
        total = None
        for i, o in enumerate(outs):
            self._put(name, f"out{i}", o)
            if o.dtype.is_floating_point and o.requires_grad:
                cot = self.randn(*o.shape)
                self._put(name, f"cot{i}", cot)
                term = (o * cot).sum()
                total = term if total is None else total + term
        if grad:
            gs = [None] * len(grad)
            if total is not None:
                gs = torch.autograd.grad(total, [leaves[k] for k in grad], allow_unused=True)
            for k, g in zip(grad, gs):
                self._put(name, f"grad.{k}", torch.zeros_like(leaves[k]) if g is None else g)
        self.meta[name] = json.dumps(meta)

    def custom(self, name, op, tensors, args=None, atol=1e-6, rtol=1e-5, **extra):
        """A case whose runner is written by hand: `tensors` holds inputs and the
        "expect.*" values to reproduce."""
        self._check_name(name)
        meta = {"op": op, "kind": "custom", "args": args or {}, "atol": atol, "rtol": rtol}
        meta.update(extra)
        for k, v in tensors.items():
            self._put(name, k, v)
        self.meta[name] = json.dumps(meta)

    def deviate(self, case, key, index, value, why):
        """Replaces element `index` (flat) of `case/key` by Cinder's deliberate value, and
        records why in the case's "deviations" (listed in docs/conformance.md)."""
        t = self.tensors[f"{case}/{key}"]
        t.view(-1)[index] = value
        meta = json.loads(self.meta[case])
        meta.setdefault("deviations", []).append(
            {"key": key, "index": index, "cinder": finite(float(value)), "why": why})
        self.meta[case] = json.dumps(meta)

    def save(self, path):
        save_file(self.tensors, path, metadata=self.meta)
        canonical_header(path)
        return len(self.meta)


def canonical_header(path):
    """Rewrites a safetensors file's JSON header with sorted keys, so that a rerun of the
    generator writes the same bytes (the writer orders the metadata map by hash). The data
    section is untouched; the header is padded with spaces to a multiple of 8 bytes, as the
    format allows."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + raw[8 + n:])


def finite(x):
    return x if math.isfinite(x) else str(x)
