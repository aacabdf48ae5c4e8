//! Independent component analysis by FastICA (scikit-learn's `FastICA` with
//! `fun="logcosh"`, `alpha = 1`, `whiten="unit-variance"`): PCA whitening on the GPU, then
//! fixed-point iterations, all components at once with symmetric decorrelation
//! (`parallel`) or one at a time with Gram-Schmidt against the earlier ones (`deflation`).

use super::pca::top_eigen;
use super::rows::{Blocks, Rows};
use super::{Stream, check_features};
use cinder_autograd::Tensor;
use cinder_device::{DeviceTensor, Error, Result};

/// How FastICA extracts the components.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcaAlgorithm {
    /// All components at once; `W <- (W W^T)^(-1/2) W` after every step (the default).
    Parallel,
    /// One component at a time, each kept orthogonal to the earlier ones by Gram-Schmidt.
    Deflation,
}

/// FastICA. Configure with the builder methods, then [`FastIca::fit`] or
/// [`FastIca::fit_transform`].
///
/// With whitening (the default), the data are centered and projected on the leading
/// `n_components` eigenvectors of their covariance, scaled to unit variance (the
/// eigenvectors from the same routine as [`super::Pca`]: Jacobi for at most 64 features,
/// subspace iteration otherwise). The fixed-point step for `g = tanh` is
/// `W1 = E[g(W z) z^T] - diag(E[g'(W z)]) W` (two matmuls and a reduction over the samples
/// on the GPU), followed by the decorrelation. The one value read back per iteration is the
/// convergence measure `max_i | |<w1_i, w_i>| - 1 |`, compared with `tol`. At the end the
/// sources are scaled to unit variance (scikit-learn's `"unit-variance"` whitening), which
/// rescales the rows of the unmixing matrix.
#[derive(Clone, Debug)]
pub struct FastIca {
    /// Number of independent components.
    pub n_components: usize,
    /// Parallel (symmetric) or deflation.
    pub algorithm: IcaAlgorithm,
    /// Center and whiten the data first. Without it the data are used as given (not even
    /// centered, as scikit-learn) and `n_components` must equal the feature count.
    pub whiten: bool,
    /// Fixed-point iterations at most (per component for deflation).
    pub max_iter: usize,
    /// Tolerance on `max | |<w1, w>| - 1 |`.
    pub tol: f32,
    /// Seed of the random starting unmixing matrix (and of the whitening's subspace
    /// iteration).
    pub seed: u64,
    fit: Option<IcaFit>,
}

#[derive(Clone, Debug)]
struct IcaFit {
    /// `[1, d]` (zeros without whitening).
    mean: DeviceTensor,
    /// `[k, d]`: sources = (x - mean) components^T.
    components: DeviceTensor,
    /// `[d, k]`, the pseudo-inverse of `components`.
    mixing: DeviceTensor,
    n_iter: usize,
}

impl FastIca {
    /// `n_components` components with scikit-learn's defaults: parallel, whitening,
    /// `max_iter = 200`, `tol = 1e-4`, seed 0. Nothing is checked until `fit`.
    pub fn new(n_components: usize) -> Self {
        FastIca {
            n_components,
            algorithm: IcaAlgorithm::Parallel,
            whiten: true,
            max_iter: 200,
            tol: 1e-4,
            seed: 0,
            fit: None,
        }
    }

    /// Sets the algorithm.
    pub fn with_algorithm(mut self, algorithm: IcaAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets whitening (unit-variance whitening when `true`).
    pub fn with_whiten(mut self, whiten: bool) -> Self {
        self.whiten = whiten;
        self
    }

    /// Sets the iteration cap (at least 1; checked by `fit`).
    pub fn with_max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Sets the tolerance (finite, `>= 0`; checked by `fit`).
    pub fn with_tol(mut self, tol: f32) -> Self {
        self.tol = tol;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fits the unmixing matrix to `x` (`[n, d]`, f32). Returns `Err` when `x` is not a
    /// finite f32 matrix with at least 2 rows, when `n_components` is 0 or larger than
    /// `min(n, d)` (or differs from `d` without whitening), when `max_iter` is 0 or `tol`
    /// is negative or not finite, or when the data have fewer than `n_components`
    /// directions of non-negligible variance (whitening would divide by ~0). `x` may be
    /// [`super::RowBlocks`] (data past one binding): the covariance is summed over the
    /// blocks and the whitened data (`[k, n]`) are assembled from them; without whitening
    /// it must be one block.
    pub fn fit(&mut self, x: &(impl Rows + ?Sized)) -> Result<&mut Self> {
        let op = "FastIca::fit";
        self.fit_blocks(&Blocks::new(op, x, 2)?)?;
        Ok(self)
    }

    /// Fits as [`FastIca::fit`] and returns the estimated sources of `x`, `[n, k]` (unit
    /// variance with whitening). Errors as [`FastIca::fit`].
    pub fn fit_transform(&mut self, x: &Tensor) -> Result<Tensor> {
        let x = x.raw();
        self.fit_blocks(&Blocks::new(
            "FastIca::fit",
            &Tensor::from_raw(x.clone()),
            2,
        )?)?;
        let f = self.fitted("FastIca::fit_transform")?;
        sources(f, &x).map(Tensor::from_raw)
    }

    fn fit_blocks(&mut self, blocks: &Blocks) -> Result<()> {
        let op = "FastIca::fit";
        let x = blocks.first();
        let k = self.n_components;
        if self.max_iter == 0 || self.tol < 0.0 || !self.tol.is_finite() {
            return Err(Error::invalid(
                op,
                format!(
                    "need max_iter >= 1 and a finite tol >= 0 (got {}, {})",
                    self.max_iter, self.tol
                ),
                &blocks.shape(),
            ));
        }
        let (n, d) = (blocks.n, blocks.d);
        if k == 0 || k > n.min(d) || (!self.whiten && k != d) {
            return Err(Error::invalid(
                op,
                format!(
                    "n_components = {k} must be in 1..=min(n_samples, n_features) \
                     (and equal n_features = {d} without whitening)"
                ),
                &blocks.shape(),
            ));
        }
        // zt: the (whitened) data with samples in columns, [k, n]; kmat maps centered
        // data to it (zt = kmat (x - mean)^T).
        let (mean, kmat, zt) = if self.whiten {
            let (mean, cov) = blocks.covariance()?;
            let (ev, v, _) = top_eigen(&cov, k, 500, 1e-6, self.seed, |_, _| {})?;
            let evs = ev.to_vec::<f32>()?;
            if evs[k - 1].is_nan() || evs[k - 1] <= 1e-6 * evs[0].max(0.0) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "the data have fewer than n_components = {k} directions of \
                         non-negligible variance (eigenvalue {} of the covariance against \
                         {} for the first): reduce n_components",
                        evs[k - 1],
                        evs[0]
                    ),
                    &blocks.shape(),
                ));
            }
            // Unit covariance with the 1/n normalization, as scikit-learn's
            // `K x^T * sqrt(n)` from the SVD of the centered data.
            let scale = ev
                .mul_scalar((n - 1) as f32 / n as f32)?
                .rsqrt()?
                .reshape(&[1, k])?;
            let kmat = v.mul(&scale)?.t()?; // [k, d]
            let zt = blocks
                .map_rows(|x| x.sub(&mean)?.matmul_t(&kmat, false, true))?
                .t()?;
            (mean, Some(kmat), zt)
        } else {
            if blocks.parts.len() != 1 {
                return Err(Error::invalid(
                    op,
                    "without whitening the data must be one tensor, not row blocks",
                    &blocks.shape(),
                ));
            }
            (DeviceTensor::zeros(x.device(), &[1, d])?, None, x.t()?)
        };
        let mut s = Stream::new(self.seed);
        let w_init = s.normal(x, &[k, k])?;
        let (w, n_iter) = match self.algorithm {
            IcaAlgorithm::Parallel => ica_par(&zt, w_init, self.max_iter, self.tol)?,
            IcaAlgorithm::Deflation => ica_def(&zt, &w_init, self.max_iter, self.tol)?,
        };
        let components = match kmat {
            Some(kmat) => {
                // Unit-variance sources: divide each row of W by its source's std.
                let std = w
                    .matmul(&zt)?
                    .var_axis(1, false, true)?
                    .sqrt()?
                    .maximum_scalar(f32::MIN_POSITIVE)?; // [k, 1]
                w.div(&std)?.matmul(&kmat)?
            }
            None => w,
        };
        let mixing = pinv_rows(&components)?;
        self.fit = Some(IcaFit {
            mean,
            components,
            mixing,
            n_iter,
        });
        Ok(())
    }

    fn fitted(&self, op: &'static str) -> Result<&IcaFit> {
        self.fit
            .as_ref()
            .ok_or_else(|| Error::invalid(op, "the model is not fitted", &[]))
    }

    /// The unmixing matrix, `[k, d]` (whitening included): sources are
    /// `(x - mean) components^T`. Returns `Err` before `fit`.
    pub fn components(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("FastIca::components")?.components) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// The mixing matrix, `[d, k]`, the pseudo-inverse of [`FastIca::components`]
    /// (`x ~ sources mixing^T + mean`). Returns `Err` before `fit`.
    pub fn mixing(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("FastIca::mixing")?.mixing) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// The per-feature mean removed before unmixing, `[1, d]` (zeros without whitening).
    /// Returns `Err` before `fit`.
    pub fn mean(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("FastIca::mean")?.mean) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Fixed-point iterations run (for deflation the largest over the components).
    /// Returns `Err` before `fit`.
    pub fn n_iter(&self) -> Result<usize> {
        Ok(self.fitted("FastIca::n_iter")?.n_iter)
    }

    /// The sources of `x` (`[m, d]`): `(x - mean) components^T`, `[m, k]`. Returns `Err`
    /// before `fit` or when `x` is not an f32 matrix with the fitted feature count.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            let f = self.fitted("FastIca::transform")?;
            check_features("FastIca::transform", x, f.mean.shape()[1])?;
            sources(f, x)
        };
        out.map(Tensor::from_raw)
    }
}

fn sources(f: &IcaFit, x: &DeviceTensor) -> Result<DeviceTensor> {
    x.sub(&f.mean)?.matmul_t(&f.components, false, true)
}

/// `(W W^T)^(-1/2) W` by the eigen-decomposition of the `[k, k]` matrix `W W^T`
/// (eigenvalues clamped at the smallest positive f32, as scikit-learn clamps at `tiny`).
fn sym_decorrelation(w: &DeviceTensor) -> Result<DeviceTensor> {
    let k = w.shape()[0];
    let (s, u) = w.matmul_t(w, false, true)?.sym_eig()?;
    let s = s
        .maximum_scalar(f32::MIN_POSITIVE)?
        .rsqrt()?
        .reshape(&[1, k])?;
    u.mul(&s)?.matmul_t(&u, false, true)?.matmul(w)
}

/// `(g(wx), mean over samples of g'(wx))` for logcosh: `tanh` and `1 - tanh^2`; `wx` is
/// `[r, n]`, the mean `[r, 1]`.
fn logcosh(wx: &DeviceTensor) -> Result<(DeviceTensor, DeviceTensor)> {
    let g = wx.tanh()?;
    let gp = g.square()?.rsub_scalar(1.0)?.mean_axis(1, true)?;
    Ok((g, gp))
}

/// Parallel FastICA on `zt` (`[k, n]`): returns the unmixing matrix `[k, k]` and the
/// number of iterations.
fn ica_par(
    zt: &DeviceTensor,
    w_init: DeviceTensor,
    max_iter: usize,
    tol: f32,
) -> Result<(DeviceTensor, usize)> {
    let n = zt.shape()[1] as f32;
    let mut w = sym_decorrelation(&w_init)?;
    let mut iters = 0;
    for it in 0..max_iter {
        let (g, gp) = logcosh(&w.matmul(zt)?)?;
        let w1 = g
            .matmul_t(zt, false, true)?
            .div_scalar(n)?
            .sub(&gp.mul(&w)?)?;
        let w1 = sym_decorrelation(&w1)?;
        let lim = w1
            .mul(&w)?
            .sum_axis(1, false)?
            .abs()?
            .add_scalar(-1.0)?
            .abs()?
            .max_all()?
            .to_scalar()?;
        w = w1;
        iters = it + 1;
        if lim < tol {
            break;
        }
    }
    Ok((w, iters))
}

/// Deflation FastICA on `zt` (`[k, n]`): each row of `w_init` is iterated, kept
/// orthogonal to the rows already found; returns `[k, k]` and the largest iteration count.
fn ica_def(
    zt: &DeviceTensor,
    w_init: &DeviceTensor,
    max_iter: usize,
    tol: f32,
) -> Result<(DeviceTensor, usize)> {
    let (k, n) = (zt.shape()[0], zt.shape()[1] as f32);
    let mut rows: Vec<DeviceTensor> = Vec::with_capacity(k);
    let mut most = 0;
    let normalize = |w: &DeviceTensor| -> Result<DeviceTensor> {
        w.div(&w.square()?.sum_all()?.sqrt()?.reshape(&[1, 1])?)
    };
    for j in 0..k {
        let prev = if j > 0 {
            let refs: Vec<&DeviceTensor> = rows.iter().collect();
            Some(DeviceTensor::concat(&refs, 0)?) // [j, k]
        } else {
            None
        };
        let mut w = normalize(&w_init.narrow(0, j, 1)?)?; // [1, k]
        let mut iters = 0;
        for it in 0..max_iter {
            let (g, gp) = logcosh(&w.matmul(zt)?)?; // [1, n], [1, 1]
            let mut w1 = g
                .matmul_t(zt, false, true)?
                .div_scalar(n)?
                .sub(&gp.mul(&w)?)?;
            if let Some(p) = &prev {
                w1 = w1.sub(&w1.matmul_t(p, false, true)?.matmul(p)?)?;
            }
            let w1 = normalize(&w1)?;
            let lim = (w1.mul(&w)?.sum_all()?.to_scalar()?.abs() - 1.0).abs();
            w = w1;
            iters = it + 1;
            if lim < tol {
                break;
            }
        }
        most = most.max(iters);
        rows.push(w);
    }
    let refs: Vec<&DeviceTensor> = rows.iter().collect();
    Ok((DeviceTensor::concat(&refs, 0)?, most))
}

/// Pseudo-inverse of a full-row-rank `[k, d]` matrix: `c^T (c c^T)^-1`, `[d, k]`, with the
/// inverse from the eigen-decomposition of the `[k, k]` Gram matrix.
fn pinv_rows(c: &DeviceTensor) -> Result<DeviceTensor> {
    let k = c.shape()[0];
    let (s, u) = c.matmul_t(c, false, true)?.sym_eig()?;
    let s = s
        .maximum_scalar(f32::MIN_POSITIVE)?
        .recip()?
        .reshape(&[1, k])?;
    let inv = u.mul(&s)?.matmul_t(&u, false, true)?;
    c.matmul_t(&inv, true, false)
}
