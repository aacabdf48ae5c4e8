#!/usr/bin/env python3
"""NMF and FastICA: scikit-learn against Cinder, same data, same init, same sitting.

    ~/.cache/torch-ref/bin/python scripts/sklearn_compare/ica_nmf.py [--n 10000] [--k 16]
        [--iters 200] [--seed 0] [--cinder]

NMF: the first N Fashion-MNIST training images / 255 (float32). The initial factors are
drawn here with scikit-learn's `init="random"` formula (avg = sqrt(mean(X) / k),
H = |avg N(0,1)| [k, d], W = |avg N(0,1)| [n, k], numpy's default_rng(seed)) and saved
as safetensors (`W`, `H`) under out/sklearn_compare/; scikit-learn runs
`NMF(solver="mu", init="custom", max_iter=iters, tol=0)` from them, for the Frobenius
norm and for the Kullback-Leibler divergence. With `--cinder` the same runs are made with
Cinder's `unsupervised` example (`--methods nmf --nmf-init FILE --nmf-tol 0`, release
build) and its final JSON lines are included.

FastICA: the synthetic mixture of crates/cinder-models/tests/classical/ica.rs (sine,
square, sawtooth and splitmix64 Laplace sources over 4000 samples, its mixing matrix);
scikit-learn's `FastICA(4, whiten="unit-variance", fun="logcosh")`, parallel and
deflation, Amari index of components_ @ MIX (Cinder's figure is printed by that test,
`ica_separates_known_sources -- --nocapture`). Also the fit time of FastICA(16) on the
images (Cinder's: `unsupervised --methods ica`).

Prints one JSON line.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import save_file
from sklearn.decomposition import NMF, FastICA

DATA = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MIX = np.array(
    [
        [1.0, 0.5, 0.3, 0.2],
        [0.4, 1.0, 0.6, 0.1],
        [0.2, 0.3, 1.0, 0.5],
        [0.6, 0.2, 0.1, 1.0],
    ]
)


def images(n):
    with gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")) as f:
        buf = f.read()
    x = np.frombuffer(buf, dtype=np.uint8, offset=16).reshape(-1, 784)[:n]
    return x.astype(np.float32) / np.float32(255.0)


def splitmix(n, seed=42):
    m = (1 << 64) - 1
    out = np.empty(n)
    st = seed
    for i in range(n):
        st = (st + 0x9E3779B97F4A7C15) & m
        z = st
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        z ^= z >> 31
        out[i] = ((z >> 11) + 0.5) / float(1 << 53)
    return out


def mixture(n):
    t = 8.0 * np.arange(n) / n
    s = np.empty((n, 4))
    s[:, 0] = np.sin(2.0 * t)
    v = np.sin(3.0 * t)
    s[:, 1] = np.where(np.signbit(v), -1.0, 1.0)  # Rust's signum: +0 -> 1
    s[:, 2] = 2.0 * np.mod(1.7 * t, 1.0) - 1.0
    u = splitmix(n) - 0.5
    s[:, 3] = -np.where(np.signbit(u), -1.0, 1.0) * np.log(1.0 - 2.0 * np.abs(u))
    return (s @ MIX.T).astype(np.float32)


def amari(p):
    a = np.abs(p)
    k = a.shape[0]
    r = (a.sum(1) / a.max(1) - 1).sum() + (a.sum(0) / a.max(0) - 1).sum()
    return float(r / (2 * k * (k - 1)))


def cinder(args, loss, init):
    cmd = [
        "cargo", "run", "--release", "--quiet", "--example", "unsupervised", "--",
        "--limit", str(args.n), "--methods", "nmf", "--nmf-k", str(args.k),
        "--nmf-iter", str(args.iters), "--nmf-tol", "0", "--nmf-loss", loss,
        "--nmf-init", init, "--out", os.path.join(ROOT, "out", "sklearn_compare", f"nmf_{loss}"),
    ]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cinder", action="store_true")
    args = ap.parse_args()

    x = images(args.n)
    rng = np.random.default_rng(args.seed)
    avg = np.sqrt(x.mean() / args.k)
    h0 = np.abs(avg * rng.standard_normal((args.k, x.shape[1]))).astype(np.float32)
    w0 = np.abs(avg * rng.standard_normal((x.shape[0], args.k))).astype(np.float32)
    os.makedirs(os.path.join(ROOT, "out", "sklearn_compare"), exist_ok=True)
    init = os.path.join(ROOT, "out", "sklearn_compare", f"nmf_init_{args.n}_{args.k}.safetensors")
    save_file({"W": np.ascontiguousarray(w0), "H": np.ascontiguousarray(h0)}, init)

    res = {"n": args.n, "k": args.k, "iters": args.iters, "seed": args.seed}
    for loss, name in [("frobenius", "frobenius"), ("kullback-leibler", "kl")]:
        m = NMF(args.k, solver="mu", beta_loss=loss, init="custom", max_iter=args.iters, tol=0.0)
        t = time.perf_counter()
        m.fit_transform(x, W=w0.copy(), H=h0.copy())
        res[f"sklearn_nmf_{name}_err"] = float(m.reconstruction_err_)
        res[f"sklearn_nmf_{name}_seconds"] = time.perf_counter() - t
        res[f"sklearn_nmf_{name}_iters"] = int(m.n_iter_)
        if args.cinder:
            c = cinder(args, name, init)
            res[f"cinder_nmf_{name}_err"] = c["nmf_reconstruction_err"]
            res[f"cinder_nmf_{name}_seconds"] = c["nmf_fit_seconds"]
            res[f"cinder_nmf_{name}_iters"] = c["nmf_iterations"]
            res[f"nmf_{name}_relative_difference"] = float(
                c["nmf_reconstruction_err"] / m.reconstruction_err_ - 1.0
            )
        print(json.dumps(res), file=sys.stderr)

    xm = mixture(4000)
    for alg in ["parallel", "deflation"]:
        ica = FastICA(4, algorithm=alg, whiten="unit-variance", fun="logcosh", random_state=3)
        t = time.perf_counter()
        ica.fit(xm)
        res[f"sklearn_ica_{alg}_amari"] = amari(ica.components_ @ MIX)
        res[f"sklearn_ica_{alg}_iters"] = int(ica.n_iter_)
        res[f"sklearn_ica_{alg}_seconds"] = time.perf_counter() - t
    ica = FastICA(16, whiten="unit-variance", fun="logcosh", random_state=0)
    t = time.perf_counter()
    ica.fit(x)
    res["sklearn_ica16_images_seconds"] = time.perf_counter() - t
    res["sklearn_ica16_images_iters"] = int(ica.n_iter_)
    print(json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())
