"""Whole models in torchvision's layout, loading the PyTorch state dict strictly by name:
AlexNet (torchvision's `alexnet`, built here without torchvision so the fixture needs only
torch, with narrow widths to keep the file small) and its 32x32 variant."""

import torch
from torch import nn


def alexnet(variant, classes, hidden, div, in_ch=3):
    w = [64 // div, 192 // div, 384 // div, 256 // div, 256 // div]
    if variant == "imagenet":
        c0 = nn.Conv2d(in_ch, w[0], 11, stride=4, padding=2)
        c3 = nn.Conv2d(w[0], w[1], 5, padding=2)
        pool, side = (lambda: nn.MaxPool2d(3, 2)), 6
    else:
        c0 = nn.Conv2d(in_ch, w[0], 3, stride=2, padding=1)
        c3 = nn.Conv2d(w[0], w[1], 3, padding=1)
        pool, side = (lambda: nn.MaxPool2d(2)), 2
    m = nn.Module()
    m.features = nn.Sequential(
        c0, nn.ReLU(inplace=True), pool(),
        c3, nn.ReLU(inplace=True), pool(),
        nn.Conv2d(w[1], w[2], 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w[2], w[3], 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w[3], w[4], 3, padding=1), nn.ReLU(inplace=True), pool(),
    )
    m.avgpool = nn.AdaptiveAvgPool2d((side, side))
    m.classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Linear(w[4] * side * side, hidden), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, classes),
    )

    def forward(x):
        return m.classifier(torch.flatten(m.avgpool(m.features(x)), 1))

    m.forward = forward
    return m


def alexnet_case(fam, name, variant, shape, classes=10, hidden=24, div=16):
    m = alexnet(variant, classes, hidden, div).eval()
    with torch.no_grad():
        for k, p in m.named_parameters():
            if "bias" in k:
                p.copy_(fam.randn(*p.shape, scale=0.1))
    x = fam.randn(*shape).requires_grad_(True)
    out = m.forward(x)
    cot = fam.randn(*out.shape)
    (out * cot).sum().backward()
    tensors = {f"state.m.{k}": v.clone() for k, v in m.state_dict().items()}
    tensors.update({"x": x.detach(), "cot": cot, "expect.out": out.detach(),
                    "expect.grad.x": x.grad})
    for k, p in m.named_parameters():
        tensors[f"expect.grad.{k}"] = p.grad
    fam.custom(name, "AlexNet", tensors,
               args={"variant": variant, "classes": classes, "hidden": hidden, "width_div": div},
               atol=5e-5, rtol=5e-4)


def build(fam):
    # 96x96: the pools leave 2x2, which the adaptive pool spreads over 6x6 (overlapping bins)
    alexnet_case(fam, "alexnet_imagenet_96", "imagenet", (1, 3, 96, 96))
    alexnet_case(fam, "alexnet_cifar", "cifar", (3, 3, 32, 32))
