//! Siamese networks (Hadsell, Chopra and LeCun): one encoder shared by both images of a
//! pair, trained with the contrastive loss; a pair sampler with a chosen similar:dissimilar
//! ratio; and the k-nearest-neighbour accuracy of an embedding.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::loss::{Reduction, contrastive};
use cinder_nn::{Conv2d, Conv2dConfig, Linear, MaxPool2d, Module, ModuleT, Path};

/// The shared encoder: `conv 5x5 pad 2 (C->w) - relu - maxpool 2 - conv 5x5 pad 2 (w->2w) -
/// relu - maxpool 2 - linear (-> 128) - relu - linear (-> dim)`, for `H`, `W` divisible by
/// 4.
pub struct Siamese {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    pool: MaxPool2d,
    image: [usize; 3],
}

impl Siamese {
    /// Creates the encoder under `path` for images `[C, H, W]`, embedding width `dim`.
    /// Returns `Err` for zero sizes, sides not divisible by 4, or a taken name.
    pub fn new(path: &Path, image: [usize; 3], width: usize, dim: usize) -> Result<Siamese> {
        let [c, h, w] = image;
        if c * h * w * width * dim == 0 || h % 4 != 0 || w % 4 != 0 {
            return Err(Error::invalid(
                "Siamese",
                "zero size or image sides not divisible by 4",
                &[c, h, w, width, dim],
            ));
        }
        let p2 = Conv2dConfig::default().padding(2);
        Ok(Siamese {
            conv1: Conv2d::new(&path.pp("conv1"), c, width, 5, p2)?,
            conv2: Conv2d::new(&path.pp("conv2"), width, 2 * width, 5, p2)?,
            fc1: Linear::new(&path.pp("fc1"), 2 * width * (h / 4) * (w / 4), 128, true)?,
            fc2: Linear::new(&path.pp("fc2"), 128, dim, true)?,
            pool: MaxPool2d::new(2),
            image,
        })
    }

    /// Embeds both images of each pair with the same weights and returns the contrastive
    /// loss (mean over pairs) with `similar` `[N]` (1 similar, 0 dissimilar) and `margin`.
    /// Returns `Err` on shape mismatch or a negative margin.
    pub fn pair_loss(
        &self,
        a: &Tensor,
        b: &Tensor,
        similar: &Tensor,
        margin: f32,
        train: bool,
    ) -> Result<Tensor> {
        let ea = self.forward_t(a, train)?;
        let eb = self.forward_t(b, train)?;
        contrastive(&ea, &eb, similar, margin, Reduction::Mean)
    }
}

impl Module for Siamese {
    /// `[N, C, H, W]` to embeddings `[N, dim]`. Returns `Err` for other image shapes.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1..] != self.image {
            return Err(Error::shapes("Siamese", &s, &self.image));
        }
        let h = self.pool.forward(&self.conv1.forward(x)?.relu()?)?;
        let h = self.pool.forward(&self.conv2.forward(&h)?.relu()?)?;
        let h = self.fc1.forward(&h.flatten_from(1)?)?.relu()?;
        self.fc2.forward(&h)
    }
}

/// SplitMix64, the sampler's small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Draws pairs of dataset indices with a fixed fraction of similar (same-label) pairs.
pub struct PairSampler {
    by_class: Vec<Vec<usize>>,
    labels: Vec<u8>,
    similar_fraction: f32,
    rng: Rng,
}

/// One pair: two dataset indices and whether their labels agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// First index.
    pub a: usize,
    /// Second index.
    pub b: usize,
    /// Whether the two have the same label.
    pub similar: bool,
}

impl PairSampler {
    /// A sampler over `labels` where `similar / (similar + dissimilar)` of each batch's
    /// pairs share a label (`similar: 1, dissimilar: 1` is the usual 1:1). Returns `Err`
    /// when both weights are 0, no class has two examples (similar pairs needed) or only
    /// one class is present (dissimilar pairs needed).
    pub fn new(labels: &[u8], similar: u32, dissimilar: u32, seed: u64) -> Result<PairSampler> {
        if similar + dissimilar == 0 {
            return Err(Error::invalid("PairSampler", "ratio 0:0", &[]));
        }
        let k = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        let mut by_class = vec![Vec::new(); k];
        for (i, &l) in labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let present = by_class.iter().filter(|c| !c.is_empty()).count();
        if similar > 0 && by_class.iter().all(|c| c.len() < 2) {
            return Err(Error::invalid(
                "PairSampler",
                "no class has two examples",
                &[labels.len()],
            ));
        }
        if dissimilar > 0 && present < 2 {
            return Err(Error::invalid(
                "PairSampler",
                "fewer than two classes",
                &[labels.len()],
            ));
        }
        Ok(PairSampler {
            by_class,
            labels: labels.to_vec(),
            similar_fraction: similar as f32 / (similar + dissimilar) as f32,
            rng: Rng(seed),
        })
    }

    /// `n` pairs, of which `round(n * fraction)` are similar, in shuffled order; the first
    /// element of each pair is uniform over the dataset (redrawn when a similar partner is
    /// needed from a class of one).
    pub fn sample(&mut self, n: usize) -> Vec<Pair> {
        let n_sim = (n as f32 * self.similar_fraction).round() as usize;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let want = i < n_sim;
            loop {
                let a = self.rng.below(self.labels.len());
                let la = self.labels[a] as usize;
                if want {
                    let c = &self.by_class[la];
                    if c.len() < 2 {
                        continue;
                    }
                    let mut b = c[self.rng.below(c.len())];
                    while b == a {
                        b = c[self.rng.below(c.len())];
                    }
                    out.push(Pair {
                        a,
                        b,
                        similar: true,
                    });
                } else {
                    let b = self.rng.below(self.labels.len());
                    if self.labels[b] as usize == la {
                        continue;
                    }
                    out.push(Pair {
                        a,
                        b,
                        similar: false,
                    });
                }
                break;
            }
        }
        for i in (1..out.len()).rev() {
            let j = self.rng.below(i + 1);
            out.swap(i, j);
        }
        out
    }
}

/// Accuracy of the k-nearest-neighbour classifier (Euclidean, majority vote, ties to the
/// smallest label) on `query` rows of width `dim` against `reference` rows, both flat
/// row-major. Returns `Err` for `k == 0`, `dim == 0`, lengths that are not whole rows or
/// disagree with the label counts, or an empty reference.
pub fn knn_accuracy(
    reference: &[f32],
    ref_labels: &[u8],
    query: &[f32],
    query_labels: &[u8],
    dim: usize,
    k: usize,
) -> Result<f32> {
    if k == 0
        || dim == 0
        || reference.len() != ref_labels.len() * dim
        || query.len() != query_labels.len() * dim
        || ref_labels.is_empty()
    {
        return Err(Error::invalid(
            "knn_accuracy",
            "k and dim must be positive; rows must match labels",
            &[reference.len(), query.len(), dim, k],
        ));
    }
    let classes = ref_labels
        .iter()
        .map(|&l| l as usize + 1)
        .max()
        .unwrap_or(1);
    let mut hits = 0usize;
    let mut d: Vec<(f32, u8)> = Vec::with_capacity(ref_labels.len());
    for (q, &ql) in query.chunks(dim).zip(query_labels) {
        d.clear();
        for (r, &rl) in reference.chunks(dim).zip(ref_labels) {
            let s: f32 = q.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum();
            d.push((s, rl));
        }
        let kk = k.min(d.len());
        d.select_nth_unstable_by(kk - 1, |a, b| a.0.total_cmp(&b.0));
        let mut votes = vec![0usize; classes];
        for &(_, l) in &d[..kk] {
            votes[l as usize] += 1;
        }
        let best = (0..classes)
            .max_by_key(|&c| (votes[c], usize::MAX - c))
            .unwrap_or(0);
        if best == ql as usize {
            hits += 1;
        }
    }
    Ok(hits as f32 / query_labels.len().max(1) as f32)
}
