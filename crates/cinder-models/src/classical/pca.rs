//! Principal component analysis: centering, the covariance by one matmul, and its leading
//! eigenpairs by block subspace iteration with Gram-Schmidt on the GPU, finished by a
//! Rayleigh-Ritz step (a Jacobi eigen-decomposition of the small projected matrix).

use super::rows::{Blocks, Rows};
use super::{Stream, check_features};
use cinder_autograd::Tensor;
use cinder_device::{DeviceTensor, Error, Result};

/// Covariances at most this wide are decomposed directly by the Jacobi kernel.
const DIRECT_MAX: usize = 64;

/// The `p` leading eigenpairs of the symmetric `[d, d]` matrix `cov`: eigenvalues `[p]`
/// (descending), eigenvectors `[d, p]` (columns, largest-magnitude entry positive), and
/// the number of subspace iterations run (0 for the direct path).
///
/// For `d <= 64` the whole matrix goes to [`DeviceTensor::sym_eig`]. Otherwise a block of
/// `p + max(10, p / 2)` random vectors is iterated (`V <- orth(cov V)`) until the trace of
/// `V^T cov V` (read back, the only value per iteration) changes by at most `tol` relative,
/// or stops growing, or `max_iter` iterations; then `V^T cov V` is decomposed and the block rotated.
pub(crate) fn top_eigen(
    cov: &DeviceTensor,
    p: usize,
    max_iter: usize,
    tol: f32,
    seed: u64,
    mut progress: impl FnMut(usize, f32),
) -> Result<(DeviceTensor, DeviceTensor, usize)> {
    let d = cov.shape()[0];
    let (w, v, iters) = if d <= DIRECT_MAX {
        let (w, v) = cov.sym_eig()?;
        (w, v, 0)
    } else {
        let nb = d.min(p + (p / 2).max(10));
        let mut s = Stream::new(seed);
        let mut v = s.normal(cov, &[d, nb])?.orthonormalize()?;
        let mut prev = f32::NEG_INFINITY;
        let mut iters = 0;
        for it in 0..max_iter {
            let z = cov.matmul(&v)?;
            let tr = v.mul(&z)?.sum_all()?.to_scalar()?;
            v = z.orthonormalize()?;
            iters = it + 1;
            progress(it, tr);
            // The trace grows monotonically in exact arithmetic: once it stops growing, f32
            // rounding dominates and further iterations change nothing.
            if tr <= prev || tr - prev <= tol * tr.abs() {
                break;
            }
            prev = tr;
        }
        let h = v.matmul_t(&cov.matmul(&v)?, true, false)?;
        let (w, rot) = h.sym_eig()?;
        (w, v.matmul(&rot)?, iters)
    };
    let w = w.narrow(0, 0, p)?;
    let v = v.narrow(1, 0, p)?;
    // Sign convention (scikit-learn's svd_flip on components): the entry of largest
    // magnitude of every eigenvector is positive.
    let idx = v.abs()?.argmax_axis(0, true)?; // [1, p]
    let sign = v.gather(0, &idx)?.sign()?;
    Ok((w, v.mul(&sign)?, iters))
}

/// Principal component analysis (scikit-learn's `PCA` with a fixed `n_components`).
#[derive(Clone, Debug)]
pub struct Pca {
    /// Number of components kept.
    pub n_components: usize,
    /// Scale the projections to unit variance in `transform` (and back in
    /// `inverse_transform`).
    pub whiten: bool,
    /// Subspace iterations at most (for more than 64 features).
    pub max_iter: usize,
    /// Relative change of the block's Rayleigh trace that ends the iterations.
    pub tol: f32,
    /// Seed of the random starting block.
    pub seed: u64,
    fit: Option<PcaFit>,
}

#[derive(Clone, Debug)]
struct PcaFit {
    mean: DeviceTensor,
    components: DeviceTensor,
    ev: DeviceTensor,
    ratio: DeviceTensor,
    noise_variance: DeviceTensor,
    n_iter: usize,
}

impl Pca {
    /// Keeps `n_components` components; no whitening, `max_iter = 500`, `tol = 1e-6`,
    /// seed 0. Nothing is checked until [`Pca::fit`].
    pub fn new(n_components: usize) -> Self {
        Pca {
            n_components,
            whiten: false,
            max_iter: 500,
            tol: 1e-6,
            seed: 0,
            fit: None,
        }
    }

    /// Sets whitening.
    pub fn with_whiten(mut self, whiten: bool) -> Self {
        self.whiten = whiten;
        self
    }

    /// Sets the iteration cap and the tolerance.
    pub fn with_iterations(mut self, max_iter: usize, tol: f32) -> Self {
        self.max_iter = max_iter;
        self.tol = tol;
        self
    }

    /// Sets the seed of the starting block.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fits the mean and the leading components of `x` (`[n, d]`, f32). Returns `Err` when
    /// `x` is not a finite f32 matrix with at least 2 rows, when `n_components` is 0 or
    /// larger than `min(n, d)`, or when `max_iter` is 0. `x` may be [`super::RowBlocks`]
    /// (data past one binding): the covariance is summed over the blocks.
    pub fn fit(&mut self, x: &(impl Rows + ?Sized)) -> Result<&mut Self> {
        self.fit_with(x, |_, _| {})
    }

    /// [`Pca::fit`] calling `progress(iteration, trace)` after every subspace iteration with
    /// the block's Rayleigh trace (the value already read back for the convergence test);
    /// never called when the covariance is decomposed directly. Errors as [`Pca::fit`].
    pub fn fit_with(
        &mut self,
        x: &(impl Rows + ?Sized),
        progress: impl FnMut(usize, f32),
    ) -> Result<&mut Self> {
        let op = "Pca::fit";
        let x = Blocks::new(op, x, 2)?;
        let (n, d) = (x.n, x.d);
        let p = self.n_components;
        if p == 0 || p > n.min(d) || self.max_iter == 0 {
            return Err(Error::invalid(
                op,
                format!(
                    "n_components = {p} must be in 1..=min(n_samples, n_features) and max_iter >= 1"
                ),
                &x.shape(),
            ));
        }
        let (mean, cov) = x.covariance()?;
        let (ev, v, n_iter) = top_eigen(&cov, p, self.max_iter, self.tol, self.seed, progress)?;
        let total = cov.diagonal()?.sum_all()?;
        let ratio = ev.div(&total)?;
        let rest = total.sub(&ev.sum_all()?)?;
        let noise_variance = if p < d {
            rest.div_scalar((d - p) as f32)?.maximum_scalar(0.0)?
        } else {
            rest.mul_scalar(0.0)?
        };
        self.fit = Some(PcaFit {
            mean,
            components: v.t()?,
            ev,
            ratio,
            noise_variance,
            n_iter,
        });
        Ok(self)
    }

    fn fitted(&self, op: &'static str) -> Result<&PcaFit> {
        self.fit
            .as_ref()
            .ok_or_else(|| Error::invalid(op, "the model is not fitted", &[]))
    }

    /// The principal axes, `[p, d]`, orthonormal rows, in decreasing order of variance
    /// (largest-magnitude entry of each positive). Returns `Err` before `fit`.
    pub fn components(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("Pca::components")?.components) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// The per-feature mean, `[1, d]`. Returns `Err` before `fit`.
    pub fn mean(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("Pca::mean")?.mean) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Variance along each component (eigenvalues of the covariance with the `n - 1`
    /// normalization), `[p]`. Returns `Err` before `fit`.
    pub fn explained_variance(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("Pca::explained_variance")?.ev) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Fraction of the total variance along each component, `[p]`. Returns `Err` before
    /// `fit`.
    pub fn explained_variance_ratio(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("Pca::explained_variance_ratio")?.ratio) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Mean of the covariance eigenvalues not kept (scikit-learn's `noise_variance_`; 0
    /// when every component is kept), a scalar tensor. Returns `Err` before `fit`.
    pub fn noise_variance(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("Pca::noise_variance")?.noise_variance) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Subspace iterations the fit ran (0 when the covariance was decomposed directly).
    /// Returns `Err` before `fit`.
    pub fn n_iter(&self) -> Result<usize> {
        Ok(self.fitted("Pca::n_iter")?.n_iter)
    }

    /// Projects `x` (`[m, d]`) on the components: `(x - mean) components^T`, `[m, p]`,
    /// divided by the square root of the explained variance when whitening. Returns `Err`
    /// before `fit` or when `x` is not an f32 matrix with the fitted feature count. `x` may
    /// be [`super::RowBlocks`]: the projections of the blocks are concatenated (they must
    /// fit one tensor).
    pub fn transform(&self, x: &(impl Rows + ?Sized)) -> Result<Tensor> {
        let blocks: Vec<DeviceTensor> = x.row_blocks().iter().map(Tensor::raw).collect();
        let out = {
            let f = self.fitted("Pca::transform")?;
            let mut zs = Vec::with_capacity(blocks.len());
            for x in &blocks {
                check_features("Pca::transform", x, f.mean.shape()[1])?;
                let z = x.sub(&f.mean)?.matmul_t(&f.components, false, true)?;
                zs.push(if self.whiten {
                    z.div(&f.ev.maximum_scalar(f32::MIN_POSITIVE)?.sqrt()?)?
                } else {
                    z
                });
            }
            match zs.len() {
                0 => Err(Error::invalid("Pca::transform", "no data blocks", &[0])),
                1 => Ok(zs.pop().expect("one")),
                _ => DeviceTensor::concat(&zs.iter().collect::<Vec<_>>(), 0),
            }
        };
        out.map(Tensor::from_raw)
    }

    /// Maps projections `z` (`[m, p]`) back to feature space: `z components + mean` (after
    /// undoing the whitening). Returns `Err` before `fit` or when `z` does not have `p`
    /// columns.
    pub fn inverse_transform(&self, z: &Tensor) -> Result<Tensor> {
        let z = &z.raw();
        let out = {
            let f = self.fitted("Pca::inverse_transform")?;
            check_features("Pca::inverse_transform", z, f.components.shape()[0])?;
            let z = if self.whiten {
                z.mul(&f.ev.sqrt()?)?
            } else {
                z.clone()
            };
            z.matmul(&f.components)?.add(&f.mean)
        };
        out.map(Tensor::from_raw)
    }
}

/// The mean (`[1, d]`) and the covariance (`[d, d]`, `n - 1` normalization) of `x`'s rows.
pub(crate) fn covariance(x: &DeviceTensor) -> Result<(DeviceTensor, DeviceTensor)> {
    let n = x.shape()[0];
    let mean = x.mean_axis(0, true)?;
    let xc = x.sub(&mean)?;
    let cov = xc
        .matmul_t(&xc, true, false)?
        .div_scalar((n.max(2) - 1) as f32)?;
    Ok((mean, cov))
}
