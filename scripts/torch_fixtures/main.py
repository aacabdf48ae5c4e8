"""Writes the PyTorch conformance fixtures to tests/fixtures/<family>.safetensors.

Run by hand, with PyTorch from PyPI in a venv (the CPU build is enough; CI only reads the
committed files):

    python3 -m venv ~/.cache/torch-ref
    ~/.cache/torch-ref/bin/pip install torch numpy safetensors
    ~/.cache/torch-ref/bin/python scripts/torch_fixtures/main.py            # every family
    ~/.cache/torch-ref/bin/python scripts/torch_fixtures/main.py conv pool  # some

Every other .py file in this directory is a family: a module with a function
`build(fam)` that adds cases to a `common.Family`. tests/conformance/<family>.rs runs them.
"""

import importlib
import pathlib
import sys

import torch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from common import Family  # noqa: E402


def families():
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in ("main", "common"))


def main(argv):
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    names = argv or families()
    out_dir = ROOT / "tests" / "fixtures"
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in names:
        mod = importlib.import_module(name)
        fam = Family(name)
        mod.build(fam)
        n = fam.save(out_dir / f"{name}.safetensors")
        size = (out_dir / f"{name}.safetensors").stat().st_size
        print(f"{name}: {n} cases, {size / 1024:.1f} KiB")
        total += n
    print(f"{total} cases (torch {torch.__version__})")


if __name__ == "__main__":
    main(sys.argv[1:])
