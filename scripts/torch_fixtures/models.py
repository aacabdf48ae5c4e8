"""Whole models in torchvision's layout, loading the PyTorch state dict strictly by name:
AlexNet (torchvision's `alexnet`, built here without torchvision so the fixture needs only
torch, with narrow widths to keep the file small) and its 32x32 variant; BEGAN's
autoencoder discriminator and its L1 reconstruction loss (MLP conditional, convolutional);
InfoGAN's Q head and its information loss."""

import torch
import torch.nn.functional as F
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


def began_case(fam, name, arch, n=4, image=(1, 8, 8), hidden=5, width=3, code=6,
               classes=None, embed=3):
    """BEGAN's discriminator in Cinder's names; the case's value is `mean |x - D(x)|`."""
    c, h, w = image
    m = nn.Module()
    e = embed if classes else 0
    if classes:
        m.embed_code = nn.Embedding(classes, embed)
    if arch == "mlp":
        if classes:
            m.embed_in = nn.Embedding(classes, embed)
        m.enc0 = nn.Linear(c * h * w + e, 2 * hidden)
        m.enc1 = nn.Linear(2 * hidden, code)
        m.dec0 = nn.Linear(code + e, 2 * hidden)
        m.dec1 = nn.Linear(2 * hidden, c * h * w)
    else:
        if classes:
            m.embed_in = nn.Embedding(classes, h * w)
        flat = 2 * width * (h // 4) * (w // 4)
        m.conv1 = nn.Conv2d(c + (1 if classes else 0), width, 4, stride=2, padding=1)
        m.conv2 = nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)
        m.enc = nn.Linear(flat, code)
        m.dec = nn.Linear(code + e, flat)
        m.deconv1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        m.deconv2 = nn.ConvTranspose2d(width, c, 4, stride=2, padding=1)

    def forward(x, y):
        if arch == "mlp":
            v = x.flatten(1)
            if classes:
                v = torch.cat([v, m.embed_in(y)], 1)
            z = m.enc1(F.elu(m.enc0(v)))
        else:
            v = x
            if classes:
                v = torch.cat([v, m.embed_in(y).view(n, 1, h, w)], 1)
            v = F.elu(m.conv2(F.elu(m.conv1(v))))
            z = m.enc(v.flatten(1))
        if classes:
            z = torch.cat([z, m.embed_code(y)], 1)
        if arch == "mlp":
            return m.dec1(F.elu(m.dec0(z))).view(n, c, h, w)
        v = F.elu(m.dec(z)).view(n, 2 * width, h // 4, w // 4)
        return m.deconv2(F.elu(m.deconv1(v)))

    x = fam.uniform(n, c, h, w).requires_grad_(True)
    y = fam.randint(n, high=classes) if classes else None
    loss = (x - forward(x, y)).abs().mean()
    loss.backward()
    tensors = {f"state.m.{k}": v.clone() for k, v in m.state_dict().items()}
    tensors.update({"x": x.detach(), "expect.loss": loss.detach(), "expect.grad.x": x.grad})
    if classes:
        tensors["labels"] = y
    for k, p in m.named_parameters():
        tensors[f"expect.grad.{k}"] = p.grad
    fam.custom(name, "BeganDiscriminator", tensors,
               args={"arch": arch, "image": list(image), "hidden": hidden, "width": width,
                     "code": code, "classes": classes or 0, "embed": embed},
               atol=2e-5, rtol=2e-4)


def q_head_case(fam, name, n=6, features=7, hidden=5, categories=4, continuous=2,
                lambda_cat=1.0, lambda_cont=0.1):
    """InfoGAN's Q head (training mode: batch statistics) and its information loss
    `lambda_cat CE + lambda_cont mean((c - mu)^2) / 2`; also the CE alone."""
    m = nn.Module()
    m.fc = nn.Linear(features, hidden)
    m.bn = nn.BatchNorm1d(hidden)
    m.cat = nn.Linear(hidden, categories)
    m.cont = nn.Linear(hidden, continuous)
    with torch.no_grad():
        m.bn.weight.copy_(1 + fam.randn(hidden, scale=0.1))
        m.bn.bias.copy_(fam.randn(hidden, scale=0.1))
    f = fam.randn(n, features).requires_grad_(True)
    cat = fam.randint(n, high=categories)
    cont = fam.uniform(n, continuous)
    hid = F.leaky_relu(m.bn(m.fc(f)), 0.1)
    ce = F.cross_entropy(m.cat(hid), cat)
    loss = lambda_cat * ce + lambda_cont * 0.5 * ((m.cont(hid) - cont) ** 2).mean()
    loss.backward()
    # the running statistics moved by the forward pass are not compared: the state is
    # the module's before it
    state = {k: v.clone() for k, v in m.state_dict().items()}
    state["bn.running_mean"] = torch.zeros(hidden)
    state["bn.running_var"] = torch.ones(hidden)
    state["bn.num_batches_tracked"] = torch.tensor(0)
    tensors = {f"state.q.{k}": v for k, v in state.items()}
    tensors.update({"features": f.detach(), "categorical": cat, "continuous": cont,
                    "expect.loss": loss.detach(), "expect.ce": ce.detach(),
                    "expect.grad.features": f.grad})
    for k, p in m.named_parameters():
        tensors[f"expect.grad.{k}"] = p.grad
    fam.custom(name, "QHead", tensors,
               args={"features": features, "hidden": hidden, "categories": categories,
                     "continuous": continuous, "lambda_cat": lambda_cat,
                     "lambda_cont": lambda_cont},
               atol=2e-5, rtol=2e-4)


def build(fam):
    # 96x96: the pools leave 2x2, which the adaptive pool spreads over 6x6 (overlapping bins)
    alexnet_case(fam, "alexnet_imagenet_96", "imagenet", (1, 3, 96, 96))
    alexnet_case(fam, "alexnet_cifar", "cifar", (3, 3, 32, 32))
    began_case(fam, "began_mlp_conditional", "mlp", classes=10)
    began_case(fam, "began_dcgan", "dcgan")
    began_case(fam, "began_dcgan_conditional", "dcgan", classes=3)
    q_head_case(fam, "infogan_q_head")
