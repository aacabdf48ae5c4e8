"""scikit-learn's LatentDirichletAllocation(learning_method="batch") on the count matrices
the `topics` example wrote (`--out`, default out/topics: counts.safetensors with `train`
and `held_out`, vocabulary.json with the vocabulary, k and iterations), so both fit the
identical data. Prints one JSON line: held-out perplexity, fit time and top words.

    ~/.cache/torch-ref/bin/python scripts/sklearn_compare/topics.py [out/topics]
"""

import json
import sys
import time

import numpy as np
from safetensors.numpy import load_file
from sklearn.decomposition import LatentDirichletAllocation

out = sys.argv[1] if len(sys.argv) > 1 else "out/topics"
m = load_file(f"{out}/counts.safetensors")
meta = json.load(open(f"{out}/vocabulary.json"))
vocab = meta["vocabulary"]
k, iters = meta["k"], meta["iter"]
x, xh = m["train"].astype(np.float32), m["held_out"].astype(np.float32)

lda = LatentDirichletAllocation(n_components=k, learning_method="batch", max_iter=iters,
                                random_state=0)
t = time.perf_counter()
lda.fit(x)
fit_s = time.perf_counter() - t
t = time.perf_counter()
ppl = lda.perplexity(xh)
ppl_s = time.perf_counter() - t
top = [[vocab[i] for i in np.argsort(-row, kind="stable")[:10]] for row in lda.components_]
print(json.dumps({
    "sklearn_lda_held_out_perplexity": float(ppl),
    "sklearn_lda_train_perplexity": float(lda.perplexity(x)),
    "sklearn_lda_fit_seconds": fit_s,
    "sklearn_lda_perplexity_seconds": ppl_s,
    "k": k, "iter": iters, "train_docs": int(x.shape[0]), "vocabulary": len(vocab),
    "sklearn_lda_top_words": top,
}))
