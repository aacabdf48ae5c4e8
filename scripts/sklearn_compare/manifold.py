#!/usr/bin/env python3
"""scikit-learn's Isomap and standard LLE on the first N Fashion-MNIST training images.

Data: the first N training images, pixels / 255, as float64, no PCA. (cinder's Isomap and
LLE pipelines, whose figures this is to be compared with, are not written yet; see the
`## Isomap and LLE` section of docs/classical.md.) Prints one JSON line: each method's reconstruction error and fit time.

Run: ~/.cache/torch-ref/bin/python scripts/sklearn_compare/manifold.py [--n 2000] [--k 5]
"""
import argparse
import gzip
import json
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--components", type=int, default=2)
    ap.add_argument("--reg", type=float, default=1e-3)
    a = ap.parse_args()
    x = load(a.n)
    out = {"n": a.n, "k": a.k, "n_components": a.components}
    g = kneighbors_graph(x, a.k, mode="distance")
    out["graph_components"] = int(connected_components(g)[0])

    t = time.perf_counter()
    iso = Isomap(n_neighbors=a.k, n_components=a.components).fit(x)
    out["isomap_fit_s"] = time.perf_counter() - t
    out["isomap_reconstruction_error"] = float(iso.reconstruction_error())
    out["isomap_eigenvalues"] = [float(v) for v in iso.kernel_pca_.eigenvalues_]

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
    print(json.dumps(out))


if __name__ == "__main__":
    main()
