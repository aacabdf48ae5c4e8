#!/usr/bin/env python3
"""scikit-learn's Isomap and standard LLE on the first N Fashion-MNIST training images.

Data: the first N training images, pixels / 255, as float64, no PCA. Prints one JSON line:
each method's reconstruction error and fit time. With --cinder, first runs cinder's
recorded comparison (the ignored `manifold_fmnist` test of cinder-models, release build,
same N, k and n_components) and adds its JSON line under "cinder", so both are measured
in the same sitting (see the `## Isomap` and `## Locally linear embedding` sections of
docs/classical.md).

Run: ~/.cache/torch-ref/bin/python scripts/sklearn_compare/manifold.py [--n 2000] [--k 10]
     [--cinder]
"""
import argparse
import gzip
import json
import os
import subprocess
import tempfile
import time

import numpy as np
from scipy.sparse.csgraph import connected_components
from sklearn.manifold import Isomap, LocallyLinearEmbedding
from sklearn.neighbors import kneighbors_graph


def load(n, path="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    with gzip.open(path, "rb") as f:
        data = f.read()
    assert int.from_bytes(data[0:4], "big") == 2051
    rows, cols = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
    x = np.frombuffer(data, dtype=np.uint8, offset=16)[: n * rows * cols]
    return x.reshape(n, rows * cols).astype(np.float64) / 255.0


def abs_cos(path, emb):
    """|cosine| between each column of cinder's embedding (raw f32 [n, p]) and sklearn's."""
    c = np.fromfile(path, dtype="<f4").astype(np.float64).reshape(emb.shape)
    return [float(abs(c[:, j] @ emb[:, j]) / (np.linalg.norm(c[:, j]) * np.linalg.norm(emb[:, j])))
            for j in range(emb.shape[1])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--components", type=int, default=2)
    ap.add_argument("--reg", type=float, default=1e-3)
    ap.add_argument("--cinder", action="store_true", help="also run cinder's release runner")
    a = ap.parse_args()
    out = {"n": a.n, "k": a.k, "n_components": a.components}
    if a.cinder:
        tmp = tempfile.mkdtemp()
        env = dict(os.environ, MANIFOLD_N=str(a.n), MANIFOLD_K=str(a.k),
                   MANIFOLD_COMPONENTS=str(a.components), MANIFOLD_OUT=tmp)
        run = subprocess.run(
            ["cargo", "test", "--release", "-p", "cinder-models", "--test", "classical",
             "manifold_fmnist", "--", "--ignored", "--nocapture"],
            env=env, capture_output=True, text=True, check=True)
        line = [l for l in run.stdout.splitlines() if l.startswith('{"n"')][-1]
        out["cinder"] = json.loads(line)
    x = load(a.n)
    g = kneighbors_graph(x, a.k, mode="distance")
    out["graph_components"] = int(connected_components(g)[0])

    t = time.perf_counter()
    iso = Isomap(n_neighbors=a.k, n_components=a.components).fit(x)
    out["isomap_fit_s"] = time.perf_counter() - t
    out["isomap_reconstruction_error"] = float(iso.reconstruction_error())
    out["isomap_eigenvalues"] = [float(v) for v in iso.kernel_pca_.eigenvalues_]
    if a.cinder:
        out["isomap_abs_cos"] = abs_cos(os.path.join(tmp, "isomap.f32"), iso.embedding_)

    t = time.perf_counter()
    lle = LocallyLinearEmbedding(
        n_neighbors=a.k,
        n_components=a.components,
        reg=a.reg,
        method="standard",
        eigen_solver="dense",
        random_state=0,
    ).fit(x)
    out["lle_fit_s"] = time.perf_counter() - t
    out["lle_reconstruction_error"] = float(lle.reconstruction_error_)
    if a.cinder:
        out["lle_abs_cos"] = abs_cos(os.path.join(tmp, "lle.f32"), lle.embedding_)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
