"""PyTorch <-> Cinder state_dict round trip for the normalization layers (run by hand).

    ~/.cache/torch-ref/bin/python scripts/torch_state_dict.py write
        writes crates/cinder-nn/tests/fixtures/torch_norms.safetensors, the state_dict of
        a small trained net (Conv2d, BatchNorm2d, GroupNorm, Linear, BatchNorm1d with
        momentum=None, LayerNorm, RMSNorm; both BatchNorms at num_batches_tracked = 3,
        saved by safetensors.torch.save_file, so the counters are int64 scalars), and
        torch_norms_io.safetensors: inputs and PyTorch's outputs in eval and train mode and
        the buffers after that training forward. `cargo test -p cinder-nn --test
        checkpoint torch_norms` loads the first strictly and must reproduce the second.

    CINDER_TORCH_EXPORT=/tmp/rt cargo test -p cinder-nn --test checkpoint torch_norms
    ~/.cache/torch-ref/bin/python scripts/torch_state_dict.py check /tmp/rt
        the test also saves Cinder's state after its training forward
        (/tmp/rt/cinder_norms.safetensors, via VarStore::save) and its eval-mode output
        (/tmp/rt/cinder_norms_io.safetensors); `check` loads the state into the PyTorch net
        with load_state_dict(strict=True), checks the counters' dtype (int64), shape ([])
        and value (4), and compares PyTorch's eval output with Cinder's.
"""

import pathlib
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates" / "cinder-nn" / "tests" / "fixtures"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)  # [N, 2, 4, 4] -> [N, 3, 2, 2]
        self.bn = nn.BatchNorm2d(3)
        self.gn = nn.GroupNorm(3, 3)
        self.fc = nn.Linear(12, 4)
        self.bn1 = nn.BatchNorm1d(4, momentum=None)
        self.ln = nn.LayerNorm(4)
        self.rms = nn.RMSNorm(4)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        h = self.gn(h).flatten(1)
        h = self.bn1(self.fc(h))
        return self.rms(self.ln(h))


def write():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    for _ in range(3):
        x = torch.randn(6, 2, 4, 4, generator=gen) * 2.0 + 0.5
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    save_file(net.state_dict(), FIXTURES / "torch_norms.safetensors")
    io = {}
    net.eval()
    with torch.no_grad():
        io["x_eval"] = torch.randn(2, 2, 4, 4, generator=gen)
        io["y_eval"] = net(io["x_eval"])
        net.train()
        io["x_train"] = torch.randn(5, 2, 4, 4, generator=gen) * 1.5
        io["y_train"] = net(io["x_train"])
    for k, v in net.state_dict().items():
        if "running" in k or "num_batches" in k:
            io[f"after.{k}"] = v.clone()
    save_file({k: v.contiguous() for k, v in io.items()}, FIXTURES / "torch_norms_io.safetensors")
    print({k: (v.dtype, list(v.shape)) for k, v in net.state_dict().items()
           if "num_batches" in k})


def check(directory):
    d = pathlib.Path(directory)
    state = load_file(d / "cinder_norms.safetensors")
    for k in ("bn.num_batches_tracked", "bn1.num_batches_tracked"):
        v = state[k]
        assert v.dtype == torch.int64 and v.shape == torch.Size([]), (k, v.dtype, v.shape)
        assert int(v) == 4, (k, int(v))
    net = Net()
    net.load_state_dict(state, strict=True)
    net.eval()
    io = load_file(d / "cinder_norms_io.safetensors")
    with torch.no_grad():
        y = net(io["x_eval"])
    err = (y - io["y_eval"]).abs().max().item()
    print(f"strict load ok; counters int64 [] = 4; eval output max |torch - cinder| = {err:.2e}")
    assert err < 1e-4, err


if __name__ == "__main__":
    if sys.argv[1:2] == ["write"]:
        write()
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        check(sys.argv[2])
    else:
        sys.exit(__doc__)
