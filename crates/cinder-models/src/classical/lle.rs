//! Standard locally linear embedding (scikit-learn's `LocallyLinearEmbedding(method=
//! "standard")`): regularized barycentre weights of every point's neighbours by a batch of
//! small Cholesky solves, `M = (I - W)^T (I - W)`, and its bottom eigenvectors by shifted
//! inverse subspace iteration finished by a Rayleigh-Ritz step, all on the GPU.

use super::isomap::{check_sizes, pairwise_dists};
use super::{Stream, check_data, check_finite};
use cinder_autograd::Tensor;
use cinder_device::{DeviceTensor, Error, Result};

/// Standard LLE with regularization (scikit-learn's `LocallyLinearEmbedding(n_neighbors,
/// n_components, reg, method="standard")`).
///
/// Every point is written as an affine combination of its `n_neighbors` nearest others:
/// with `Z` the neighbours minus the point, `G = Z Z^T + r I` (`r = reg * trace(Z Z^T)`,
/// or `reg` when that trace is 0), `G w = 1`, `w / sum(w)`. The embedding is the
/// eigenvectors of `M = (I - W)^T (I - W)` for its 2nd to `(n_components + 1)`-th smallest
/// eigenvalues (the smallest, 0, belongs to the constant vector).
///
/// The bottom eigenvectors come from inverse subspace iteration: `M + shift * I` is
/// Cholesky-factored once on the device (in blocks of 256 rows), a block of `n_components + 1 + max(10,
/// n_components)` vectors is solved against it and re-orthonormalized until the smallest
/// Ritz values (a Rayleigh-Ritz step on `B^T B`, `B = (I - W) V`, every 3 rounds) settle,
/// and the last Rayleigh-Ritz rotation gives the eigenvectors. Eigenvalues are
/// `||(I - W) y||^2`, sums of squares, so the tiny ones keep their relative precision in
/// f32.
#[derive(Clone, Debug)]
pub struct LocallyLinearEmbedding {
    /// Neighbours of every point.
    pub n_neighbors: usize,
    /// Dimensions of the embedding.
    pub n_components: usize,
    /// Regularization of the local Gram matrices, relative to their trace.
    pub reg: f32,
    /// Inverse-iteration rounds at most.
    pub max_iter: usize,
    /// Relative change of the sum of the `n_components + 1` smallest Ritz values that ends
    /// the iterations (looked at every 3 rounds).
    pub tol: f32,
    /// Shift added to `M`'s diagonal before the Cholesky factorization, relative to the
    /// mean of that diagonal (multiplied by 10 and retried while the factorization fails).
    pub shift: f32,
    /// Rows per block of the blocked Cholesky factorization of `M`.
    pub block: usize,
    /// Seed of the random starting block.
    pub seed: u64,
    fit: Option<LleFit>,
}

#[derive(Clone, Debug)]
struct LleFit {
    eigenvalues: Vec<f32>,
    error: f32,
    n_iter: usize,
    shift: f32,
}

/// Rounds between two convergence reads.
const CHECK_EVERY: usize = 3;

/// The Ritz values (descending, `[b]`) and rotation (`[b, b]`) of the orthonormal block `v`
/// (`[n, b]`) for `M = A^T A`, from `B^T B` with `B = A V`.
fn ritz(a: &DeviceTensor, v: &DeviceTensor) -> Result<(DeviceTensor, DeviceTensor)> {
    let b = a.matmul(v)?;
    b.t()?.matmul(&b)?.sym_eig()
}

/// A right-looking blocked Cholesky factor `L` of an `[n, n]` matrix, kept as its blocks:
/// per block of `b` rows, the diagonal factor `L11` (`[b, b]`, by the serial kernel) and
/// the panel below it, `L21` (`[m - b, b]`, by a triangular solve) and its transpose; the
/// trailing matrix is updated by one matmul per block. The serial kernel alone would run
/// `n^3 / 3` multiply-adds in one invocation.
struct BlockCholesky {
    blocks: Vec<CholBlock>,
}

struct CholBlock {
    l11: DeviceTensor,
    /// `(L21, L21^T)`, absent for the last block.
    panel: Option<(DeviceTensor, DeviceTensor)>,
}

impl BlockCholesky {
    /// Factors `a` (symmetric, `[n, n]`) in blocks of `block` rows; `None` when a diagonal
    /// block is not positive definite (the infos are read back once, at the end).
    fn factor(a: &DeviceTensor, block: usize) -> Result<Option<Self>> {
        let n = a.shape()[0];
        let mut s = a.clone();
        let mut blocks = Vec::new();
        let mut infos = Vec::new();
        let mut start = 0;
        while start < n {
            let m = n - start;
            let b = block.clamp(1, m);
            let top = s.narrow(0, 0, b)?;
            let (l11, info) = top.narrow(1, 0, b)?.cholesky()?;
            infos.push(info);
            let panel = if b < m {
                let rest = s.narrow(0, b, m - b)?;
                // L11 L21^T = A12 (the rows above the trailing block).
                let l21t = l11.tri_solve(&top.narrow(1, b, m - b)?, true, false)?;
                let l21 = l21t.t()?;
                s = rest.narrow(1, b, m - b)?.sub(&l21.matmul(&l21t)?)?;
                Some((l21, l21t))
            } else {
                None
            };
            blocks.push(CholBlock { l11, panel });
            start += b;
        }
        for info in infos {
            if info.to_vec::<u32>()?[0] != 0 {
                return Ok(None);
            }
        }
        Ok(Some(BlockCholesky { blocks }))
    }

    /// Solves `L L^T x = r` for `r` `[n, c]`: forward by blocks, then backward.
    fn solve(&self, r: &DeviceTensor) -> Result<DeviceTensor> {
        let mut ys = Vec::with_capacity(self.blocks.len());
        let mut rest = r.clone();
        for blk in &self.blocks {
            let b = blk.l11.shape()[0];
            let m = rest.shape()[0];
            let y = blk.l11.tri_solve(&rest.narrow(0, 0, b)?, true, false)?;
            if let Some((l21, _)) = &blk.panel {
                rest = rest.narrow(0, b, m - b)?.sub(&l21.matmul(&y)?)?;
            }
            ys.push(y);
        }
        let mut x: Option<DeviceTensor> = None;
        for (blk, y) in self.blocks.iter().zip(ys).rev() {
            let rhs = match (&blk.panel, &x) {
                (Some((_, l21t)), Some(after)) => y.sub(&l21t.matmul(after)?)?,
                _ => y,
            };
            let xi = blk.l11.tri_solve(&rhs, true, true)?;
            x = Some(match x {
                Some(after) => DeviceTensor::concat(&[&xi, &after], 0)?,
                None => xi,
            });
        }
        x.ok_or_else(|| Error::invalid("LocallyLinearEmbedding", "empty factor", r.shape()))
    }
}

impl LocallyLinearEmbedding {
    /// `n_neighbors` neighbours, `n_components` dimensions, `reg = 1e-3` (scikit-learn's),
    /// `max_iter = 300`, `tol = 1e-5`, `shift = 1e-6`, `block = 256`, seed 0. Nothing is checked until
    /// [`LocallyLinearEmbedding::fit_transform`].
    pub fn new(n_neighbors: usize, n_components: usize) -> Self {
        LocallyLinearEmbedding {
            n_neighbors,
            n_components,
            reg: 1e-3,
            max_iter: 300,
            tol: 1e-5,
            shift: 1e-6,
            block: 256,
            seed: 0,
            fit: None,
        }
    }

    /// Sets the regularization (must be finite and > 0 at fit time).
    pub fn with_reg(mut self, reg: f32) -> Self {
        self.reg = reg;
        self
    }

    /// Sets the seed of the starting block.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the cap on inverse-iteration rounds (0 is an `Err` at fit time).
    pub fn with_max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Sets the convergence tolerance of the inverse iteration.
    pub fn with_tol(mut self, tol: f32) -> Self {
        self.tol = tol;
        self
    }

    /// Sets the rows per block of the factorization of `M` (256 by default; 0 is an `Err`
    /// at fit time). Changes the speed, not the result beyond rounding.
    pub fn with_block(mut self, block: usize) -> Self {
        self.block = block;
        self
    }

    /// Sets the relative shift of `M` before its factorization (must be finite and > 0).
    pub fn with_shift(mut self, shift: f32) -> Self {
        self.shift = shift;
        self
    }

    /// Fits the embedding of `x` (`[n, d]`, f32) and returns it, `[n, n_components]`
    /// (unit-norm columns, in increasing order of eigenvalue, the largest-magnitude entry
    /// of every column positive).
    ///
    /// Returns `Err` when `x` is not a finite f32 matrix with at least 2 rows, when
    /// `n_neighbors` or `n_components` is 0 or `n_components + 1` or `n_neighbors` is not
    /// below `n`, when `n` passes `Device::max_square_side` (`M` is one `[n, n]` binding:
    /// 5792 under lavapipe's 128 MiB), when `reg` or `shift` is not finite and positive, when
    /// `max_iter` or `block` is 0, when the barycentre weights come out non-finite, or when
    /// `M + shift` cannot be factored even after raising the shift a millionfold.
    pub fn fit_transform(&mut self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let op = "LocallyLinearEmbedding::fit_transform";
        let (n, d) = check_data(op, x, 2)?;
        let (k, p) = (self.n_neighbors, self.n_components);
        check_sizes(op, x, n, k, p)?;
        if p + 1 >= n {
            return Err(Error::invalid(
                op,
                format!("n_components = {p} needs n_components + 1 < n_samples ({n})"),
                x.shape(),
            ));
        }
        let pos = |v: f32| v.is_finite() && v > 0.0;
        if !pos(self.reg) || !pos(self.shift) || self.max_iter == 0 || self.block == 0 {
            return Err(Error::invalid(
                op,
                format!(
                    "reg = {} and shift = {} must be finite and > 0, max_iter and block >= 1",
                    self.reg, self.shift
                ),
                x.shape(),
            ));
        }
        let dist = pairwise_dists(x)?;
        let (idx, _) = dist.knn_select(k, true)?;
        drop(dist);
        let w = barycenter_weights(x, &idx, n, k, d, self.reg)?;
        // A local system that could not be solved in f32 shows up as NaN or inf weights.
        check_finite(op, &w).map_err(|_| {
            Error::invalid(
                op,
                "the barycentre weights are not finite (raise reg)",
                x.shape(),
            )
        })?;
        // I - W: the weights negated off the diagonal (a point is never its own neighbour).
        let a = idx.scatter_rows(&w.neg()?, n, 0.0, Some(1.0))?;
        // (I - W)^T materialized: a transpose flag on the left operand is slower on lavapipe.
        let m = a.t()?.matmul(&a)?;
        let mean_diag = m.diagonal()?.mean_all()?.to_scalar()?;
        let eye = DeviceTensor::eye(x.device(), n, n)?;
        let mut shift = self.shift;
        let l = loop {
            let shifted = m.add(&eye.mul_scalar(shift * mean_diag)?)?;
            if let Some(l) = BlockCholesky::factor(&shifted, self.block)? {
                break l;
            }
            if shift >= self.shift * 1e6 {
                return Err(Error::invalid(
                    op,
                    format!("M + {shift} * mean(diag M) * I is not positive definite"),
                    x.shape(),
                ));
            }
            shift *= 10.0;
        };
        drop((m, eye));
        let nb = (p + 1 + p.max(10)).min(n);
        let mut s = Stream::new(self.seed);
        let mut v = s.normal(x, &[n, nb])?.orthonormalize()?;
        let mut prev = f32::INFINITY;
        let mut n_iter = 0;
        let mut rot = None;
        for it in 0..self.max_iter {
            v = l.solve(&v)?.orthonormalize()?;
            n_iter = it + 1;
            if n_iter % CHECK_EVERY == 0 || n_iter == self.max_iter {
                // Rayleigh-Ritz on (I - W) V: B^T B holds the small eigenvalues without
                // the cancellation of V^T M V.
                let (w, r) = ritz(&a, &v)?;
                // sym_eig sorts descending: the p + 1 smallest (the constant vector's
                // included) are the last ones.
                let w = w.to_vec::<f32>()?;
                let cur: f32 = w[nb - 1 - p..].iter().sum();
                rot = Some(r);
                if (prev - cur).abs() <= self.tol * cur.abs() {
                    break;
                }
                prev = cur;
            } else {
                rot = None;
            }
        }
        let rot = match rot {
            Some(r) => r,
            None => ritz(&a, &v)?.1,
        };
        // The smallest is column nb - 1 (the constant vector), then nb - 2, ... .
        let cols: Vec<u32> = (0..p).map(|j| (nb - 2 - j) as u32).collect();
        let cols = DeviceTensor::from_slice(x.device(), &cols, &[p])?;
        let y = v.matmul(&rot.index_select(1, &cols)?)?;
        let idx_max = y.abs()?.argmax_axis(0, true)?;
        let y = y.mul(&y.gather(0, &idx_max)?.sign()?)?;
        let ev = a
            .matmul(&y)?
            .square()?
            .sum_axis(0, false)?
            .to_vec::<f32>()?;
        let error = ev.iter().sum();
        self.fit = Some(LleFit {
            eigenvalues: ev,
            error,
            n_iter,
            shift,
        });
        Ok(Tensor::from_raw(y))
    }

    fn fitted(&self, op: &'static str) -> Result<&LleFit> {
        self.fit
            .as_ref()
            .ok_or_else(|| Error::invalid(op, "the model is not fitted", &[]))
    }

    /// scikit-learn's `reconstruction_error_`: the sum of the kept eigenvalues of `M`.
    /// Returns `Err` before a fit.
    pub fn reconstruction_error(&self) -> Result<f32> {
        Ok(self
            .fitted("LocallyLinearEmbedding::reconstruction_error")?
            .error)
    }

    /// The kept eigenvalues of `M`, `||(I - W) y||^2` for every embedding column, in
    /// increasing order. Returns `Err` before a fit.
    pub fn eigenvalues(&self) -> Result<Vec<f32>> {
        Ok(self
            .fitted("LocallyLinearEmbedding::eigenvalues")?
            .eigenvalues
            .clone())
    }

    /// Inverse-iteration rounds the fit ran. Returns `Err` before a fit.
    pub fn n_iter(&self) -> Result<usize> {
        Ok(self.fitted("LocallyLinearEmbedding::n_iter")?.n_iter)
    }

    /// The relative shift the factorization of `M` succeeded with. Returns `Err` before a
    /// fit.
    pub fn shift_used(&self) -> Result<f32> {
        Ok(self.fitted("LocallyLinearEmbedding::shift_used")?.shift)
    }
}

/// Barycentre weights `[n, k]` of every row of `x` from its neighbours `idx` (u32 `[n, k]`),
/// as scikit-learn's `barycenter_weights`, in chunks of rows so that the gathered
/// neighbourhoods `[c, k, d]` stay within a quarter of a storage binding.
fn barycenter_weights(
    x: &DeviceTensor,
    idx: &DeviceTensor,
    n: usize,
    k: usize,
    d: usize,
    reg: f32,
) -> Result<DeviceTensor> {
    let dev = x.device();
    let limit = (dev.max_binding_bytes() / 4 / 4) as usize;
    let chunk = (limit / (k * d)).clamp(1, n);
    let eye = DeviceTensor::eye(dev, k, k)?;
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let c = chunk.min(n - start);
        let ids = idx.narrow(0, start, c)?.reshape(&[c * k])?;
        let xi = x.narrow(0, start, c)?.reshape(&[c, 1, d])?;
        let z = x.index_select(0, &ids)?.reshape(&[c, k, d])?.sub(&xi)?;
        let g = z.matmul_t(&z, false, true)?; // [c, k, k]
        let tr = g.diagonal()?.sum_axis(1, true)?; // [c, 1]
        let r = tr.mul_scalar(reg)?;
        let r = r.add(&tr.le_scalar(0.0)?.mul_scalar(reg)?)?;
        let g = g.add(&eye.reshape(&[1, k, k])?.mul(&r.reshape(&[c, 1, 1])?)?)?;
        let (l, _) = g.cholesky()?;
        let ones = DeviceTensor::ones(dev, &[c, k, 1])?;
        let w = l.cholesky_solve(&ones)?.reshape(&[c, k])?;
        parts.push(w.div(&w.sum_axis(1, true)?)?);
        start += c;
    }
    let refs: Vec<&DeviceTensor> = parts.iter().collect();
    DeviceTensor::concat(&refs, 0)
}
