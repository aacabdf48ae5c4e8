//! Classical unsupervised learning (and least squares) as GPU pipelines: k-means, Gaussian
//! mixtures by EM, PCA, probabilistic PCA, FastICA, NMF, Isomap, locally linear embedding, linear regression and topic models
//! (pLSA, LDA), shaped like scikit-learn (`fit`, `predict`, `transform`, `score`).
//!
//! Everything heavy runs on the device through [`DeviceTensor`] ops (matmuls, reductions,
//! the `linalg` kernels); no autograd is involved. Inside an iteration nothing is read back
//! except the one scalar that decides convergence. Data are `[n_samples, n_features]` f32
//! tensors. Bad input (wrong rank or dtype, NaN or infinite values, more clusters than
//! samples, a covariance that is not positive definite) returns `Err`, never panics.

pub mod gmm;
pub mod ica;
pub mod isomap;
pub mod kmeans;
pub mod linear;
pub mod lle;
pub mod nmf;
pub mod pca;
pub mod ppca;
pub mod rows;
pub mod topics;
pub mod tsne;

pub use gmm::{CovarianceType, GaussianMixture};
pub use ica::{FastIca, IcaAlgorithm};
pub use isomap::Isomap;
pub use kmeans::KMeans;
pub use linear::{LinearRegression, Lstsq, lstsq, polynomial_features};
pub use lle::LocallyLinearEmbedding;
pub use nmf::{BetaLoss, Nmf, NmfInit};
pub use pca::Pca;
pub use ppca::{PpcaMethod, ProbabilisticPca};
pub use rows::{RowBlocks, Rows};
pub use topics::{LatentDirichletAllocation, Plsa};
pub use tsne::{Tsne, TsneCheck, TsneInit, trustworthiness};

use cinder_device::{DType, DeviceTensor, Error, Result};

/// Checks that `x` is a finite f32 `[n, d]` matrix with `n >= min_rows` and `d >= 1`;
/// returns `(n, d)`. Reads back one scalar (the sum, to find NaN or infinities).
pub(crate) fn check_data(
    op: &'static str,
    x: &DeviceTensor,
    min_rows: usize,
) -> Result<(usize, usize)> {
    x.expect_dtype(op, DType::F32)?;
    if x.rank() != 2 {
        return Err(Error::invalid(
            op,
            "expected a [n_samples, n_features] matrix",
            x.shape(),
        ));
    }
    let (n, d) = (x.shape()[0], x.shape()[1]);
    if n < min_rows || d == 0 {
        return Err(Error::invalid(
            op,
            format!("need at least {min_rows} samples and 1 feature"),
            x.shape(),
        ));
    }
    check_finite(op, x)?;
    Ok((n, d))
}

/// Returns `Err` when `x` holds a NaN or an infinity (one scalar read back: the count of
/// such elements, found from their bits by [`DeviceTensor::nonfinite_mask`]).
pub(crate) fn check_finite(op: &'static str, x: &DeviceTensor) -> Result<()> {
    let s = x.nonfinite_mask()?.sum_all()?.to_scalar()?;
    if s != 0.0 {
        return Err(Error::invalid(
            op,
            "input contains NaN or infinite values",
            x.shape(),
        ));
    }
    Ok(())
}

/// Checks that `x` is an f32 `[n, d]` matrix with the `d` a model was fitted with.
pub(crate) fn check_features(op: &'static str, x: &DeviceTensor, d: usize) -> Result<usize> {
    x.expect_dtype(op, DType::F32)?;
    if x.rank() != 2 || x.shape()[1] != d {
        return Err(Error::shapes(
            op,
            x.shape(),
            &[x.shape().first().copied().unwrap_or(0), d],
        ));
    }
    Ok(x.shape()[0])
}

/// Squared Euclidean distances `[n, k]` between the rows of `x` (`[n, d]`, with row squared
/// norms `x_sq` `[n, 1]`) and the rows of `c` (`[k, d]`), by the expansion
/// `|x|^2 - 2 x.c + |c|^2`, clamped at 0.
pub(crate) fn sq_dists(
    x: &DeviceTensor,
    x_sq: &DeviceTensor,
    c: &DeviceTensor,
) -> Result<DeviceTensor> {
    let k = c.shape()[0];
    let c_sq = c.square()?.sum_axis(1, false)?.reshape(&[1, k])?;
    let xc = x.matmul_t(c, false, true)?;
    x_sq.add(&c_sq)?
        .sub(&xc.mul_scalar(2.0)?)?
        .maximum_scalar(0.0)
}

/// Seeded stream of Philox draws: each call takes a fresh counter range, so no two draws of
/// one fit overlap.
#[derive(Clone, Debug)]
pub(crate) struct Stream {
    seed: u64,
    offset: u64,
}

impl Stream {
    pub(crate) fn new(seed: u64) -> Self {
        Stream { seed, offset: 0 }
    }
    fn take(&mut self, n: usize) -> u64 {
        let o = self.offset;
        self.offset += n as u64;
        o
    }
    /// Uniform `[0, 1)` samples of `shape`.
    pub(crate) fn uniform(&mut self, x: &DeviceTensor, shape: &[usize]) -> Result<DeviceTensor> {
        let o = self.take(shape.iter().product());
        DeviceTensor::rand_uniform(x.device(), shape, 0.0, 1.0, self.seed, o)
    }
    /// Standard normal samples of `shape`.
    pub(crate) fn normal(&mut self, x: &DeviceTensor, shape: &[usize]) -> Result<DeviceTensor> {
        let o = self.take(shape.iter().product());
        DeviceTensor::rand_normal(x.device(), shape, 0.0, 1.0, self.seed, o)
    }
    /// Gumbel(0, 1) samples of `shape`: `-log(-log(u))`, with `u` kept inside (0, 1).
    pub(crate) fn gumbel(&mut self, x: &DeviceTensor, shape: &[usize]) -> Result<DeviceTensor> {
        self.uniform(x, shape)?
            .clamp(1e-20, 0.999_999_9)?
            .log()?
            .neg()?
            .log()?
            .neg()
    }
}

/// Draws one index per row of `log_w` (`[r, n]`, unnormalized log-weights) with probability
/// proportional to `exp(log_w)`, by the Gumbel-max trick; returns u32 `[r]`.
pub(crate) fn sample_log_weights(s: &mut Stream, log_w: &DeviceTensor) -> Result<DeviceTensor> {
    let g = s.gumbel(log_w, log_w.shape())?;
    log_w.add(&g)?.argmax_axis(1, false)
}
