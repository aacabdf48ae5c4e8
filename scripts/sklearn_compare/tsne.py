"""scikit-learn's exact t-SNE on the first N Fashion-MNIST training images / 255 after
PCA-50, for comparison with `cargo run --release --example manifold -- --method tsne
--limit N` (which runs its own PCA-50). Prints one JSON line: KL divergence,
trustworthiness (k = 10) on the PCA input, n_iter_, fit time (PCA excluded).

    ~/.cache/torch-ref/bin/python scripts/sklearn_compare/tsne.py --n 2000
"""
import argparse, gzip, json, time
import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=2000)
ap.add_argument("--pca", type=int, default=50)
ap.add_argument("--perplexity", type=float, default=30.0)
ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
a = ap.parse_args()
with gzip.open(f"{a.data}/train-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)[: a.n]
x = x.astype(np.float32) / 255
z = PCA(a.pca, svd_solver="full").fit_transform(x).astype(np.float32)
t = time.time()
ts = TSNE(2, method="exact", init="pca", perplexity=a.perplexity, random_state=0)
emb = ts.fit_transform(z)
fit = time.time() - t
print(json.dumps({
    "n": a.n,
    "kl_divergence": float(ts.kl_divergence_),
    "trustworthiness": float(trustworthiness(z, emb, n_neighbors=10)),
    "n_iter": int(ts.n_iter_),
    "fit_seconds": fit,
}))
