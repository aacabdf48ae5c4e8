//! Exact t-SNE (scikit-learn's `TSNE(method="exact")`) on the GPU, and the trustworthiness
//! score (`sklearn.manifold.trustworthiness`) on the host.
//!
//! The input's squared Euclidean distances (one matmul), the per-point binary search for the
//! perplexity, the joint probabilities `P`, and every gradient step run on the device with
//! the `tsne` kernels of `cinder-device`. A step is three dispatches (the gradient's per-row
//! sums, a column sum, the momentum-and-gains update); nothing is read back except every
//! 50th iteration, when the KL divergence and the gradient norm come back together (four
//! floats). Only `P` is held as an `n x n` matrix during the descent, so `n` is limited by the
//! device's largest binding ([`cinder_device::Device::max_square_side`]: 5,792 points under
//! lavapipe's 128 MiB).

use super::pca::Pca;
use super::{Stream, check_data, sq_dists};
use cinder_autograd::Tensor;
use cinder_device::{DType, DeviceTensor, Error, Result, TSNE_MAX_COMPONENTS, TsneStep};

/// Iterations with early exaggeration and momentum 0.5 (scikit-learn's
/// `_EXPLORATION_MAX_ITER`).
pub const EXPLORATION_ITER: usize = 250;
/// Iterations between two convergence checks (scikit-learn's `_N_ITER_CHECK`).
pub const CHECK_EVERY: usize = 50;
/// Binary search steps of the perplexity calibration.
const PERPLEXITY_STEPS: u32 = 100;
/// Entropy tolerance (nats) of the perplexity calibration.
const PERPLEXITY_TOL: f32 = 1e-5;

/// How the embedding starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsneInit {
    /// The input's first principal components, scaled so the first column has standard
    /// deviation 1e-4 (scikit-learn's `init="pca"`, its default since 1.2).
    Pca,
    /// `1e-4` times standard normal draws from the seed (`init="random"`).
    Random,
}

/// One convergence check of a fit: what [`Tsne::fit_transform_with`] reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TsneCheck {
    /// 0-based iteration index (as scikit-learn counts: 49, 99, ...).
    pub iteration: usize,
    /// KL divergence at this iteration (with `P` exaggerated during the first phase).
    pub kl_divergence: f32,
    /// Norm of the gain-scaled gradient.
    pub grad_norm: f32,
}

/// Exact t-distributed stochastic neighbour embedding (scikit-learn's
/// `TSNE(method="exact", metric="euclidean")`). Configure with the builders, then
/// [`Tsne::fit_transform`].
#[derive(Clone, Debug)]
pub struct Tsne {
    /// Embedding dimension (1 to 4).
    pub n_components: usize,
    /// Perplexity of the conditional distributions (default 30).
    pub perplexity: f32,
    /// Factor on `P` during the exploration phase (default 12).
    pub early_exaggeration: f32,
    /// Learning rate; `None` is scikit-learn's `"auto"`: `max(n / early_exaggeration / 4, 50)`.
    pub learning_rate: Option<f32>,
    /// Total gradient descent iterations (default 1000).
    pub max_iter: usize,
    /// Iterations of the exploration phase (default 250, scikit-learn's fixed value).
    pub exploration_iter: usize,
    /// Checks without a lower KL after which the second phase stops (default 300).
    pub n_iter_without_progress: usize,
    /// Gradient norm at or below which the descent stops (default 1e-7).
    pub min_grad_norm: f32,
    /// Starting embedding (default [`TsneInit::Pca`]).
    pub init: TsneInit,
    /// Seed of the random start and of the PCA start's subspace iteration.
    pub seed: u64,
    fit: Option<(f32, usize)>,
}

impl Tsne {
    /// A t-SNE into `n_components` dimensions with scikit-learn's defaults (perplexity 30,
    /// early exaggeration 12, automatic learning rate, 1000 iterations, PCA start, seed 0).
    /// Nothing is checked until [`Tsne::fit_transform`].
    pub fn new(n_components: usize) -> Self {
        Tsne {
            n_components,
            perplexity: 30.0,
            early_exaggeration: 12.0,
            learning_rate: None,
            max_iter: 1000,
            exploration_iter: EXPLORATION_ITER,
            n_iter_without_progress: 300,
            min_grad_norm: 1e-7,
            init: TsneInit::Pca,
            seed: 0,
            fit: None,
        }
    }

    /// Sets the perplexity.
    pub fn with_perplexity(mut self, perplexity: f32) -> Self {
        self.perplexity = perplexity;
        self
    }

    /// Sets the early exaggeration.
    pub fn with_early_exaggeration(mut self, early_exaggeration: f32) -> Self {
        self.early_exaggeration = early_exaggeration;
        self
    }

    /// Sets the learning rate (`None`: scikit-learn's `"auto"`).
    pub fn with_learning_rate(mut self, learning_rate: Option<f32>) -> Self {
        self.learning_rate = learning_rate;
        self
    }

    /// Sets the total number of iterations.
    pub fn with_max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Sets the length of the exploration phase (scikit-learn fixes it at 250).
    pub fn with_exploration_iter(mut self, exploration_iter: usize) -> Self {
        self.exploration_iter = exploration_iter;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the starting embedding.
    pub fn with_init(mut self, init: TsneInit) -> Self {
        self.init = init;
        self
    }

    /// Embeds `x` (`[n, d]`, f32): returns `[n, n_components]`. Returns `Err` when `x` is
    /// not a finite f32 matrix with at least 2 rows; when `n_components` is not in `1..=4`;
    /// when the perplexity is not positive or not below `n`; when the early exaggeration is
    /// below 1, the learning rate not positive, or `max_iter` is 0; and when `n` passes
    /// [`cinder_device::Device::max_square_side`] (the `n x n` matrices must each fit one binding:
    /// 5,792 points under lavapipe's 128 MiB).
    pub fn fit_transform(&mut self, x: &Tensor) -> Result<Tensor> {
        self.fit_transform_with(x, |_| {})
    }

    /// [`Tsne::fit_transform`] calling `progress` at every convergence check (every 50
    /// iterations, with the values already read back). Errors as [`Tsne::fit_transform`].
    pub fn fit_transform_with(
        &mut self,
        x: &Tensor,
        mut progress: impl FnMut(TsneCheck),
    ) -> Result<Tensor> {
        let op = "Tsne::fit_transform";
        let x = &x.raw();
        let (n, _) = check_data(op, x, 2)?;
        let k = self.n_components;
        if k == 0 || k > TSNE_MAX_COMPONENTS {
            return Err(Error::invalid(
                op,
                format!("n_components = {k} must be in 1..={TSNE_MAX_COMPONENTS}"),
                x.shape(),
            ));
        }
        let perp = self.perplexity;
        if !(perp.is_finite() && perp > 0.0 && (perp as f64) < n as f64) {
            return Err(Error::invalid(
                op,
                format!("perplexity = {perp} must be positive and less than n_samples = {n}"),
                x.shape(),
            ));
        }
        let ex = self.early_exaggeration;
        if !(ex.is_finite() && ex >= 1.0) {
            return Err(Error::invalid(
                op,
                format!("early_exaggeration = {ex} must be at least 1"),
                x.shape(),
            ));
        }
        let lr = match self.learning_rate {
            None => (n as f32 / ex / 4.0).max(50.0),
            Some(lr) if lr.is_finite() && lr > 0.0 => lr,
            Some(lr) => {
                return Err(Error::invalid(
                    op,
                    format!("learning_rate = {lr} must be positive"),
                    x.shape(),
                ));
            }
        };
        if self.max_iter == 0 {
            return Err(Error::invalid(op, "max_iter must be at least 1", x.shape()));
        }
        let limit = x.device().max_square_side();
        if n > limit {
            return Err(Error::invalid(
                op,
                format!(
                    "exact t-SNE holds n x n matrices, each in one storage binding: at most \
                     {limit} samples on this device ({} MiB per binding), got {n}",
                    x.device().max_binding_bytes() >> 20
                ),
                x.shape(),
            ));
        }
        self.fit = None;

        // P: squared distances of the centred data (the expansion loses less to rounding),
        // conditional probabilities by binary search, symmetrized.
        let p = {
            let xc = x.sub(&x.mean_axis(0, true)?)?;
            let x_sq = xc.square()?.sum_axis(1, true)?;
            let d = sq_dists(&xc, &x_sq, &xc)?;
            let (ct, _) = d.tsne_conditional(perp, PERPLEXITY_STEPS, PERPLEXITY_TOL)?;
            drop(d);
            ct.tsne_joint(f64::EPSILON as f32)?
        };

        let y = match self.init {
            TsneInit::Pca => {
                let mut pca = Pca::new(k).with_seed(self.seed);
                let z = pca.fit(&Tensor::from_raw(x.clone()))?;
                let z = z.transform(&Tensor::from_raw(x.clone()))?.raw();
                let std = z.narrow(1, 0, 1)?.var_axis(0, false, true)?.sqrt()?;
                z.div(&std)?.mul_scalar(1e-4)?.deep_clone()?
            }
            TsneInit::Random => Stream::new(self.seed)
                .normal(x, &[n, k])?
                .mul_scalar(1e-4)?
                .deep_clone()?,
        };

        let dof = (k as f32 - 1.0).max(1.0);
        let coef = 2.0 * (dof + 1.0) / dof;
        let explore = self.exploration_iter.min(self.max_iter);
        let mut phase = |p: &DeviceTensor,
                         start: usize,
                         end: usize,
                         exaggeration: f32,
                         momentum: f32,
                         without_progress: usize|
         -> Result<(f32, usize)> {
            let dev = x.device();
            let upd = DeviceTensor::zeros(dev, &[n, k])?;
            let gains = DeviceTensor::ones(dev, &[n, k])?;
            let step = TsneStep {
                coef,
                learning_rate: lr,
                momentum,
                min_gain: 0.01,
            };
            let mut error = f32::MAX;
            let mut best_error = f32::MAX;
            let mut best_iter = start;
            let mut last = start;
            for i in start..end {
                last = i;
                let check = (i + 1) % CHECK_EVERY == 0;
                let with_error = check || i + 1 == end;
                let (a, b, stats) = p.tsne_grad_terms(&y, dof, exaggeration, with_error)?;
                let tot = stats.sum_axis(0, false)?;
                y.tsne_step(&upd, &gains, &a, &b, &tot, &stats, step)?;
                if !with_error {
                    continue;
                }
                let s = stats.sum_axis(0, false)?.to_vec::<f32>()?;
                error = (s[1] as f64 + s[2] as f64 * (s[0] as f64).ln()) as f32;
                if !check {
                    continue;
                }
                let grad_norm = s[3].max(0.0).sqrt();
                progress(TsneCheck {
                    iteration: i,
                    kl_divergence: error,
                    grad_norm,
                });
                if error < best_error {
                    best_error = error;
                    best_iter = i;
                } else if i - best_iter > without_progress {
                    break;
                }
                if grad_norm <= self.min_grad_norm {
                    break;
                }
            }
            Ok((error, last))
        };
        let (mut kl, mut it) = phase(&p, 0, explore, ex, 0.5, EXPLORATION_ITER)?;
        if it + 1 < self.max_iter {
            (kl, it) = phase(
                &p,
                it + 1,
                self.max_iter,
                1.0,
                0.8,
                self.n_iter_without_progress,
            )?;
        }
        self.fit = Some((kl, it));
        Ok(Tensor::from_raw(y))
    }

    /// The KL divergence after the last fit, without exaggeration (scikit-learn's
    /// `kl_divergence_`: the value at the last check or the last iteration, computed before
    /// that iteration's step). When `max_iter <= exploration_iter` only the exaggerated phase
    /// ran, and this is its (exaggerated) value. Returns `Err` before a fit.
    pub fn kl_divergence(&self) -> Result<f32> {
        self.fit
            .map(|f| f.0)
            .ok_or_else(|| Error::invalid("Tsne::kl_divergence", "the model is not fitted", &[]))
    }

    /// The index of the last iteration run (scikit-learn's `n_iter_`: 999 for a full run of
    /// 1000 iterations). Returns `Err` before a fit.
    pub fn n_iter(&self) -> Result<usize> {
        self.fit
            .map(|f| f.1)
            .ok_or_else(|| Error::invalid("Tsne::n_iter", "the model is not fitted", &[]))
    }
}

fn host_matrix(op: &'static str, t: &Tensor) -> Result<(Vec<f32>, usize, usize)> {
    let t = t.raw();
    t.expect_dtype(op, DType::F32)?;
    if t.rank() != 2 {
        return Err(Error::invalid(op, "expected an [n, d] matrix", t.shape()));
    }
    let (n, d) = (t.shape()[0], t.shape()[1]);
    let v = t.to_vec::<f32>()?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::invalid(
            op,
            "input contains NaN or infinite values",
            t.shape(),
        ));
    }
    Ok((v, n, d))
}

/// How well `embedding` (`[n, k]`) keeps the neighbourhoods of `x` (`[n, d]`), as
/// `sklearn.manifold.trustworthiness(x, embedding, n_neighbors=n_neighbors)` with the
/// Euclidean metric: `1 - 2 / (n k (2n - 3k - 1)) sum_i sum_{j in N_k(i)} max(0, r(i, j) - k)`,
/// where `N_k(i)` are the `k` nearest neighbours of `i` in the embedding and `r(i, j)` is
/// `j`'s rank among `i`'s neighbours in the input space (ties ranked by index, as a stable
/// sort). Computed on the host in f64 (rows split over the available threads; `O(n^2 d)`).
/// Returns `Err` when either is not a finite f32 matrix, their row counts differ, `d` or `k`
/// is 0, or `n_neighbors` is 0 or at least `n / 2` (as scikit-learn).
pub fn trustworthiness(x: &Tensor, embedding: &Tensor, n_neighbors: usize) -> Result<f32> {
    let op = "trustworthiness";
    let (xv, n, d) = host_matrix(op, x)?;
    let (ev, ne, k) = host_matrix(op, embedding)?;
    if ne != n || d == 0 || k == 0 {
        return Err(Error::shapes(op, &[n, d], &[ne, k]));
    }
    let nn = n_neighbors;
    if nn == 0 || nn as f64 >= n as f64 / 2.0 {
        return Err(Error::invalid(
            op,
            format!(
                "n_neighbors ({nn}) must be at least 1 and less than n_samples / 2 ({})",
                n as f64 / 2.0
            ),
            &[n, d],
        ));
    }
    let xd: Vec<f64> = xv.iter().map(|&v| v as f64).collect();
    let ed: Vec<f64> = ev.iter().map(|&v| v as f64).collect();
    let row_penalty = |i: usize| -> u64 {
        let xi = &xd[i * d..(i + 1) * d];
        let dx: Vec<f64> = (0..n)
            .map(|j| {
                xd[j * d..(j + 1) * d]
                    .iter()
                    .zip(xi)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum()
            })
            .collect();
        let ei = &ed[i * k..(i + 1) * k];
        let mut de: Vec<(f64, usize)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| {
                let s: f64 = ed[j * k..(j + 1) * k]
                    .iter()
                    .zip(ei)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                (s, j)
            })
            .collect();
        de.select_nth_unstable_by(nn - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut pen = 0u64;
        for &(_, j) in &de[..nn] {
            let rank = 1
                + (0..n)
                    .filter(|&l| l != i && (dx[l] < dx[j] || (dx[l] == dx[j] && l < j)))
                    .count();
            pen += rank.saturating_sub(nn) as u64;
        }
        pen
    };
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(n);
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &row_penalty;
                s.spawn(move || (t..n).step_by(threads).map(f).sum::<u64>())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let (nf, kf) = (n as f64, nn as f64);
    Ok((1.0 - total as f64 * (2.0 / (nf * kf * (2.0 * nf - 3.0 * kf - 1.0)))) as f32)
}
