//! Probabilistic PCA (Tipping & Bishop, 1999): `x = W z + mean + noise` with
//! `z ~ N(0, I_q)` and isotropic noise of variance `sigma^2`, fitted by maximum likelihood in
//! closed form (eigen-decomposition of the sample covariance) or by EM.

use super::pca::top_eigen;
use super::rows::{Blocks, Rows};
use super::{Stream, check_features};
use cinder_autograd::Tensor;
use cinder_device::{DeviceTensor, Error, Result};

/// How [`ProbabilisticPca::fit`] finds the maximum-likelihood parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PpcaMethod {
    /// `W = U_q (Lambda_q - sigma^2 I)^(1/2)`, `sigma^2` the mean of the discarded
    /// eigenvalues of the sample covariance (Tipping & Bishop, eq. 7-8).
    ClosedForm,
    /// EM on the sample covariance (Tipping & Bishop, eq. 29-30) from a random `W`.
    Em,
}

/// Probabilistic PCA with `q` latent dimensions.
#[derive(Clone, Debug)]
pub struct ProbabilisticPca {
    /// Latent dimension `q` (at least 1, below the feature count).
    pub n_components: usize,
    /// Closed form or EM.
    pub method: PpcaMethod,
    /// EM iterations at most (and subspace iterations at most for the closed form).
    pub max_iter: usize,
    /// EM stops when `W` changes by at most `tol` relative (Frobenius norm) in an iteration.
    pub tol: f32,
    /// Seed of the random start (EM) or starting block (closed form).
    pub seed: u64,
    fit: Option<PpcaFit>,
}

#[derive(Clone, Debug)]
struct PpcaFit {
    mean: DeviceTensor,
    /// `[d, q]`.
    w: DeviceTensor,
    /// Scalar tensor.
    sigma2: DeviceTensor,
    /// Lower Cholesky factor of `M = W^T W + sigma^2 I`, `[q, q]`.
    m_chol: DeviceTensor,
    /// `log det(W W^T + sigma^2 I)`, scalar tensor.
    log_det_c: DeviceTensor,
    history: Vec<f32>,
}

impl ProbabilisticPca {
    /// `q` latent dimensions by the closed form; `max_iter = 1000`, `tol = 1e-5`, seed 0.
    /// Nothing is checked until `fit`.
    pub fn new(n_components: usize) -> Self {
        ProbabilisticPca {
            n_components,
            method: PpcaMethod::ClosedForm,
            max_iter: 1000,
            tol: 1e-5,
            seed: 0,
            fit: None,
        }
    }

    /// Sets the fitting method.
    pub fn with_method(mut self, method: PpcaMethod) -> Self {
        self.method = method;
        self
    }

    /// Sets the iteration cap and tolerance.
    pub fn with_iterations(mut self, max_iter: usize, tol: f32) -> Self {
        self.max_iter = max_iter;
        self.tol = tol;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fits mean, `W` and `sigma^2` to `x` (`[n, d]`, f32) by maximum likelihood. Returns
    /// `Err` when `x` is not a finite f32 matrix with at least 2 rows, when `q` is 0, not
    /// below `d` or above `n`, when `max_iter` is 0, or when the noise variance comes out
    /// at most 1e-6 of the mean variance (data of rank at most `q`: the model is degenerate).
    /// `x` may be [`super::RowBlocks`] (data past one binding): only the covariance, summed
    /// over the blocks, is used.
    pub fn fit(&mut self, x: &(impl Rows + ?Sized)) -> Result<&mut Self> {
        let op = "ProbabilisticPca::fit";
        let blocks = Blocks::new(op, x, 2)?;
        let (n, d) = (blocks.n, blocks.d);
        let x = blocks.first();
        let q = self.n_components;
        if q == 0 || q >= d || q > n || self.max_iter == 0 {
            return Err(Error::invalid(
                op,
                format!(
                    "n_components = {q} must be in 1..n_features and at most n_samples, max_iter >= 1"
                ),
                &blocks.shape(),
            ));
        }
        let (mean, cov) = blocks.covariance()?;
        // Maximum likelihood uses the biased sample covariance S (1/n).
        let s = cov.mul_scalar((n - 1) as f32 / n as f32)?;
        let tr_s = s.diagonal()?.sum_all()?;
        let dev = x.device();
        let eye_q = DeviceTensor::eye(dev, q, q)?;
        let (w, sigma2, history) = match self.method {
            PpcaMethod::ClosedForm => {
                let (lam, u, _) = top_eigen(&s, q, self.max_iter, 1e-6, self.seed, |_, _| {})?;
                let sigma2 = tr_s.sub(&lam.sum_all()?)?.div_scalar((d - q) as f32)?;
                let scale = lam.sub(&sigma2)?.maximum_scalar(0.0)?.sqrt()?; // [q]
                (u.mul(&scale)?, sigma2, Vec::new())
            }
            PpcaMethod::Em => {
                let mut st = Stream::new(self.seed);
                let mut w = st.normal(x, &[d, q])?;
                let mut sigma2 = tr_s.div_scalar(d as f32)?;
                let mut history = Vec::new();
                for _ in 0..self.max_iter {
                    let sw = s.matmul(&w)?; // [d, q]
                    let m = w.matmul_t(&w, true, false)?.add(&eye_q.mul(&sigma2)?)?;
                    let lm = m.cholesky()?.0;
                    // Mean log-likelihood of the current parameters.
                    let minv_wt = lm.cholesky_solve(&w.t()?)?; // [q, d]
                    let ll = mean_ll(d, &lm, &sigma2, &tr_s, &minv_wt, &sw)?;
                    // W_new = S W (sigma^2 M + W^T S W)^{-1} M; sigma^2_new =
                    // (tr S - tr(S W M^{-1} W_new^T)) / d.
                    let a = w.matmul_t(&sw, true, false)?; // [q, q]
                    let c = m.mul(&sigma2)?.add(&a)?;
                    let lc = c.cholesky()?.0;
                    let w_new = m.matmul(&lc.cholesky_solve(&sw.t()?)?)?.t()?; // [d, q]
                    let minv_swt = lm.cholesky_solve(&sw.t()?)?; // [q, d]
                    let t = minv_swt.mul(&w_new.t()?)?.sum_all()?;
                    sigma2 = tr_s.sub(&t)?.div_scalar(d as f32)?;
                    // Relative change of W: the convergence scalar, read back with ll.
                    let dw = w_new
                        .sub(&w)?
                        .square()?
                        .sum_all()?
                        .div(&w_new.square()?.sum_all()?)?
                        .sqrt()?;
                    w = w_new;
                    let v = DeviceTensor::concat(&[&ll.reshape(&[1])?, &dw.reshape(&[1])?], 0)?
                        .to_vec::<f32>()?;
                    history.push(v[0]);
                    if !v[0].is_finite() || !v[1].is_finite() {
                        return Err(Error::invalid(
                            op,
                            "EM diverged (non-finite values)",
                            &blocks.shape(),
                        ));
                    }
                    if v[1] <= self.tol {
                        break;
                    }
                }
                (w, sigma2, history)
            }
        };
        // sigma^2 at f32 rounding level of the mean variance means no noise is left.
        let v = DeviceTensor::concat(&[&sigma2.reshape(&[1])?, &tr_s.reshape(&[1])?], 0)?
            .to_vec::<f32>()?;
        if v[0].is_nan() || v[0] <= 1e-6 * v[1] / d as f32 {
            return Err(Error::invalid(
                op,
                format!(
                    "noise variance {} is not positive (relative to the mean variance): the data \
                     have rank at most n_components",
                    v[0]
                ),
                &blocks.shape(),
            ));
        }
        let m = w.matmul_t(&w, true, false)?.add(&eye_q.mul(&sigma2)?)?;
        let m_chol = m.cholesky_checked()?;
        let log_det_c = m_chol
            .diagonal()?
            .log()?
            .sum_all()?
            .mul_scalar(2.0)?
            .add(&sigma2.log()?.mul_scalar((d - q) as f32)?)?;
        self.fit = Some(PpcaFit {
            mean,
            w,
            sigma2,
            m_chol,
            log_det_c,
            history,
        });
        Ok(self)
    }

    fn fitted(&self, op: &'static str) -> Result<&PpcaFit> {
        self.fit
            .as_ref()
            .ok_or_else(|| Error::invalid(op, "the model is not fitted", &[]))
    }

    /// The loading matrix `W`, `[d, q]` (unique up to a rotation of its columns). Returns
    /// `Err` before `fit`.
    pub fn loadings(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("ProbabilisticPca::loadings")?.w) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// The mean, `[1, d]`. Returns `Err` before `fit`.
    pub fn mean(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("ProbabilisticPca::mean")?.mean) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// The noise variance `sigma^2` (read back). Returns `Err` before `fit`.
    pub fn noise_variance(&self) -> Result<f32> {
        self.fitted("ProbabilisticPca::noise_variance")?
            .sigma2
            .to_scalar()
    }

    /// EM: the mean log-likelihood of the parameters before every update (empty for the
    /// closed form). Returns
    /// `Err` before `fit`.
    pub fn history(&self) -> Result<&[f32]> {
        Ok(&self.fitted("ProbabilisticPca::history")?.history)
    }

    /// Log-likelihood of every row of `x` under `N(mean, W W^T + sigma^2 I)`, `[m]`, by the
    /// Woodbury identity (only `q x q` systems). Returns `Err` before `fit` or when `x` is
    /// not an f32 matrix with the fitted feature count.
    pub fn score_samples(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            let op = "ProbabilisticPca::score_samples";
            let f = self.fitted(op)?;
            let d = f.w.shape()[0];
            let m = check_features(op, x, d)?;
            let xc = x.sub(&f.mean)?;
            // x^T C^{-1} x = (|x|^2 - |L_M^{-1} W^T x|^2) / sigma^2.
            let y = f
                .m_chol
                .tri_solve(&f.w.matmul_t(&xc, true, true)?, true, false)?; // [q, m]
            let quad = xc
                .square()?
                .sum_axis(1, false)?
                .sub(&y.square()?.sum_axis(0, false)?)?
                .div(&f.sigma2)?;
            let c = d as f32 * (2.0 * std::f32::consts::PI).ln();
            quad.add(&f.log_det_c)?
                .add_scalar(c)?
                .mul_scalar(-0.5)?
                .reshape(&[m])
        };
        out.map(Tensor::from_raw)
    }

    /// Mean log-likelihood per sample of `x` (read back). Errors as
    /// [`ProbabilisticPca::score_samples`]. `x` may be [`super::RowBlocks`]: the block sums
    /// are added on the device and one value is read back.
    pub fn score(&self, x: &(impl Rows + ?Sized)) -> Result<f32> {
        let mut total: Option<DeviceTensor> = None;
        let mut n = 0;
        for b in x.row_blocks() {
            let s = self.score_samples(&b)?.raw();
            n += s.shape().first().copied().unwrap_or(0);
            let s = s.sum_all()?;
            total = Some(match total {
                Some(t) => t.add(&s)?,
                None => s,
            });
        }
        match total {
            Some(t) if n > 0 => Ok(t.to_scalar()? / n as f32),
            _ => Err(Error::invalid(
                "ProbabilisticPca::score",
                "no samples",
                &[0],
            )),
        }
    }

    /// Posterior mean of the latent variables, `M^{-1} W^T (x - mean)`, `[m, q]`. Errors as
    /// [`ProbabilisticPca::score_samples`].
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            let op = "ProbabilisticPca::transform";
            let f = self.fitted(op)?;
            check_features(op, x, f.w.shape()[0])?;
            let xc = x.sub(&f.mean)?;
            f.m_chol
                .cholesky_solve(&f.w.matmul_t(&xc, true, true)?)?
                .t()
        };
        out.map(Tensor::from_raw)
    }

    /// Draws `n` samples `W z + mean + sigma eps` (`z`, `eps` standard normal from the
    /// Philox stream `seed`), `[n, d]`. Returns `Err` before `fit` or for `n = 0`.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Tensor> {
        let out = {
            let op = "ProbabilisticPca::sample";
            let f = self.fitted(op)?;
            if n == 0 {
                return Err(Error::invalid(op, "n must be at least 1", &[]));
            }
            let (d, q) = (f.w.shape()[0], f.w.shape()[1]);
            let mut s = Stream::new(seed);
            let z = s.normal(&f.w, &[n, q])?;
            let eps = s.normal(&f.w, &[n, d])?;
            z.matmul_t(&f.w, false, true)?
                .add(&f.mean)?
                .add(&eps.mul(&f.sigma2.sqrt()?)?)
        };
        out.map(Tensor::from_raw)
    }
}

/// Mean log-likelihood of `(W, sigma^2)` given `S`: `-(d ln 2 pi + ln|C| + tr(C^{-1} S)) / 2`
/// with `ln|C| = ln|M| + (d - q) ln sigma^2` and
/// `tr(C^{-1} S) = (tr S - tr(M^{-1} W^T S W)) / sigma^2`.
fn mean_ll(
    d: usize,
    lm: &DeviceTensor,
    sigma2: &DeviceTensor,
    tr_s: &DeviceTensor,
    minv_wt: &DeviceTensor,
    sw: &DeviceTensor,
) -> Result<DeviceTensor> {
    let q = lm.shape()[0];
    let log_det = lm
        .diagonal()?
        .log()?
        .sum_all()?
        .mul_scalar(2.0)?
        .add(&sigma2.log()?.mul_scalar((d - q) as f32)?)?;
    let tr = tr_s.sub(&minv_wt.mul(&sw.t()?)?.sum_all()?)?.div(sigma2)?;
    let c = d as f32 * (2.0 * std::f32::consts::PI).ln();
    log_det.add(&tr)?.add_scalar(c)?.mul_scalar(-0.5)
}
