"""PyTorch's figures for what `cargo bench --bench train_step` and `device_info` measure.

The same steps as Cinder's bench: every step uploads a host batch (f32 images, int64 labels),
runs forward, cross-entropy, backward and an Adam step (lr 1e-3); the device is
synchronized once per window of steps, not per step. Models: the MLP 784-256-10 (ReLU,
batch 128), LeNet-5 (batch 64) and the CIFAR ResNet-20 (batch 32, downsampling by 1x1
convolutions with batch norm, as cinder-models builds it). Then fp32 matmul GFLOP/s with TF32
off. Prints one line per figure and a final JSON object.

    python3 scripts/torch_step.py                     # CPU, all threads
    python3 scripts/torch_step.py --threads 2         # the same cores as lavapipe
    python3 scripts/torch_step.py --device cuda --matmul 1024 2048 4096
"""

import argparse
import json
import platform
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc3(F.relu(self.fc2(x)))


class Block(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.down = None
        if stride != 1 or i != o:
            self.down = nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.down is None else self.down(x)))


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, ch = [], 16
        for s, w in enumerate((16, 32, 64)):
            for b in range(3):
                blocks.append(Block(ch, w, 2 if (s > 0 and b == 0) else 1))
                ch = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        h = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def step_rate(name, model, bs, shape, dev, seconds):
    g = torch.Generator().manual_seed(1)
    batches = [(torch.rand(bs, *shape, generator=g), torch.randint(0, 10, (bs,), generator=g))
               for _ in range(4)]
    model = model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(k):
        x, y = batches[k % 4]
        x, y = x.to(dev), y.to(dev)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for k in range(10):
        step(k)
    sync(dev)
    rates = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 3:
        t = time.perf_counter()
        for k in range(20):
            step(k)
        sync(dev)
        rates.append(20 * bs / (time.perf_counter() - t))
    rates.sort()
    med = rates[len(rates) // 2]
    print(f"{name}: {med:.0f} images/s (median of {len(rates)} windows of 20 steps, "
          f"[{rates[0]:.0f} {rates[-1]:.0f}])")
    return med


def matmul_rate(n, dev):
    a = torch.rand(n, n, device=dev)
    b = torch.rand(n, n, device=dev)
    for _ in range(3):
        a @ b
    sync(dev)
    reps = max(3, int(2e10 / (2 * n ** 3)))
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(dev)
    gflops = 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9
    print(f"matmul n={n}: {gflops:.1f} GFLOP/s")
    return gflops


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per model")
    ap.add_argument("--models", default="mlp,lenet5,resnet20")
    ap.add_argument("--matmul", type=int, nargs="*", default=[1024])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    dev = torch.device(args.device)
    out = {"torch": torch.__version__, "device": args.device,
           "threads": torch.get_num_threads(), "cpu": platform.processor()}
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
    models = {"mlp": (mlp, 128, (1, 28, 28)), "lenet5": (LeNet5, 64, (1, 28, 28)),
              "resnet20": (ResNet20, 32, (3, 32, 32))}
    for name in args.models.split(","):
        build, bs, shape = models[name]
        out[f"{name}_images_per_s"] = round(step_rate(name, build(), bs, shape, dev,
                                                      args.seconds), 1)
    for n in args.matmul:
        out[f"matmul_{n}_gflops"] = round(matmul_rate(n, dev), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
