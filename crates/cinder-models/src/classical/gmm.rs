//! Gaussian mixture models fitted by expectation-maximization on the GPU (scikit-learn's
//! `GaussianMixture` with `init_params="kmeans"`), full or diagonal covariances.

use super::{KMeans, Stream, check_data, check_features, sample_log_weights};
use cinder_autograd::Tensor;
use cinder_device::{DType, DeviceTensor, Error, Result};

/// Shape of each component's covariance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CovarianceType {
    /// A full `[d, d]` matrix per component.
    Full,
    /// A diagonal (`[d]` variances) per component.
    Diag,
}

/// A Gaussian mixture fitted by EM. Configure with the builder methods, then
/// [`GaussianMixture::fit`].
///
/// Initialization: one k-means run (k-means++ seeding) gives hard responsibilities, from
/// which an M-step computes the starting parameters. With `n_init > 1` the whole fit is
/// repeated from that many k-means initializations and the one with the highest final mean
/// log-likelihood (scikit-learn's lower bound) is kept. Each iteration: E-step in the log
/// domain (Cholesky factors of the covariances inverted by a triangular solve, Mahalanobis
/// terms by batched matmul, log-sum-exp over components), then M-step by matmuls
/// (`resp^T x`, weighted outer products), adding `reg_covar` to every variance. The mean
/// log-likelihood and the count of failed factorizations come back in one small readback per
/// iteration; iterations stop when the mean log-likelihood changes by less than `tol`.
#[derive(Clone, Debug)]
pub struct GaussianMixture {
    /// Number of components.
    pub n_components: usize,
    /// Full or diagonal covariances.
    pub covariance_type: CovarianceType,
    /// Convergence threshold on the change of the mean log-likelihood per sample.
    pub tol: f32,
    /// Added to the diagonal of every covariance (keeps them positive definite).
    pub reg_covar: f32,
    /// EM iterations at most (per initialization).
    pub max_iter: usize,
    /// Independent initializations; the fit with the highest final mean log-likelihood is
    /// kept (scikit-learn's `n_init`).
    pub n_init: usize,
    /// Seed of the k-means initialization and of `sample`.
    pub seed: u64,
    fit: Option<GmmFit>,
}

#[derive(Clone, Debug)]
struct GmmFit {
    d: usize,
    /// `[k]`.
    weights: DeviceTensor,
    /// `[k, d]`.
    means: DeviceTensor,
    /// Full: `[k, d, d]`; diag: `[k, d]`.
    covariances: DeviceTensor,
    /// Full: lower Cholesky factors `[k, d, d]`; diag: standard deviations `[k, d]`.
    chol: DeviceTensor,
    /// Full: inverse Cholesky factors `[k, d, d]`; diag: inverse standard deviations.
    prec_chol: DeviceTensor,
    /// `log det(prec_chol)` per component, `[k, 1]`.
    log_det: DeviceTensor,
    /// Factorization flags per component (non-zero: not positive definite).
    info: DeviceTensor,
    /// During the fit: the training data minus the means, `[k, n, d]`, computed by the
    /// M-step and reused by the next E-step (same means); dropped when the fit ends.
    train_diff: Option<DeviceTensor>,
    history: Vec<f32>,
    converged: bool,
    n_iter: usize,
}

impl GaussianMixture {
    /// `n_components` full-covariance components with scikit-learn's defaults: `tol = 1e-3`,
    /// `reg_covar = 1e-6`, `max_iter = 100`, `n_init = 1`, seed 0. Nothing is checked until `fit`.
    pub fn new(n_components: usize) -> Self {
        GaussianMixture {
            n_components,
            covariance_type: CovarianceType::Full,
            tol: 1e-3,
            reg_covar: 1e-6,
            max_iter: 100,
            n_init: 1,
            seed: 0,
            fit: None,
        }
    }

    /// Sets the covariance type.
    pub fn with_covariance_type(mut self, t: CovarianceType) -> Self {
        self.covariance_type = t;
        self
    }

    /// Sets the convergence tolerance (finite, `>= 0`; checked by `fit`).
    pub fn with_tol(mut self, tol: f32) -> Self {
        self.tol = tol;
        self
    }

    /// Sets the covariance regularization (finite, `>= 0`; checked by `fit`).
    pub fn with_reg_covar(mut self, reg: f32) -> Self {
        self.reg_covar = reg;
        self
    }

    /// Sets the iteration cap (at least 1; checked by `fit`).
    pub fn with_max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Sets the number of initializations (at least 1; checked by `fit`). Initialization `i`
    /// seeds its k-means with [`GaussianMixture::init_seed`]`(seed, i)`.
    pub fn with_n_init(mut self, n_init: usize) -> Self {
        self.n_init = n_init;
        self
    }

    /// The k-means seed of initialization `i` under `seed`: `seed` itself for `i = 0` (so
    /// `n_init = 1` fits as before), a Weyl-sequence step away for the others.
    pub fn init_seed(seed: u64, i: usize) -> u64 {
        seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fits the mixture to `x` (`[n, d]`, f32). Returns `Err` when `x` is not a finite f32
    /// matrix, when `n_components` is 0 or larger than `n`, when `tol`/`reg_covar` is
    /// negative or not finite or `max_iter` or `n_init` is 0, or when a covariance is not positive
    /// definite even after `reg_covar` (the message names the iteration).
    pub fn fit(&mut self, x: &Tensor) -> Result<&mut Self> {
        self.fit_with(x, |_, _| {})
    }

    /// [`GaussianMixture::fit`] calling `progress(iteration, mean_log_likelihood)` after
    /// every E-step (the value already read back for the convergence test); iteration 0 is
    /// the k-means initialization, and the count restarts at 0 for every initialization when
    /// `n_init > 1`. Errors as [`GaussianMixture::fit`].
    pub fn fit_with(
        &mut self,
        x: &Tensor,
        mut progress: impl FnMut(usize, f32),
    ) -> Result<&mut Self> {
        let x = &x.raw();
        let op = "GaussianMixture::fit";
        let k = self.n_components;
        let bad_f = |v: f32| v < 0.0 || !v.is_finite();
        if k == 0
            || self.max_iter == 0
            || self.n_init == 0
            || bad_f(self.tol)
            || bad_f(self.reg_covar)
        {
            return Err(Error::invalid(
                op,
                format!(
                    "need n_components, max_iter, n_init >= 1 and finite tol, reg_covar >= 0 (got {k}, {}, {}, {}, {})",
                    self.max_iter, self.n_init, self.tol, self.reg_covar
                ),
                x.shape(),
            ));
        }
        let (n, _) = check_data(op, x, 1)?;
        if k > n {
            return Err(Error::invalid(
                op,
                format!("n_components = {k} is larger than n_samples = {n}"),
                x.shape(),
            ));
        }
        let mut best: Option<GmmFit> = None;
        for i in 0..self.n_init {
            let f = self.fit_once(x, Self::init_seed(self.seed, i), &mut progress)?;
            let last = |g: &GmmFit| g.history.last().copied().unwrap_or(f32::NEG_INFINITY);
            // NaN never wins; the first fit is kept when every bound is NaN.
            if best.as_ref().is_none_or(|b| last(&f) > last(b)) {
                best = Some(f);
            }
        }
        self.fit = best;
        Ok(self)
    }

    /// One EM fit from the k-means initialization seeded with `seed`.
    fn fit_once(
        &self,
        x: &DeviceTensor,
        seed: u64,
        progress: &mut impl FnMut(usize, f32),
    ) -> Result<GmmFit> {
        let op = "GaussianMixture::fit";
        let (k, d) = (self.n_components, x.shape()[1]);
        let mut km = KMeans::new(k).with_seed(seed);
        km.fit(&Tensor::from_raw(x.clone()))?;
        let resp = km.labels()?.raw().one_hot(k)?;
        let mut f = self.m_step(x, &resp, d)?;
        // E-step with one readback: (log responsibilities, mean log-likelihood); a failed
        // factorization of the M-step that produced `f` is an error here.
        let e = |f: &GmmFit, it: usize| -> Result<(DeviceTensor, f32)> {
            let (log_resp, mean_ll) = e_step(self.covariance_type, x, f)?;
            let v = DeviceTensor::concat(&[&mean_ll.reshape(&[1])?, &failures(f)?], 0)?
                .to_vec::<f32>()?;
            check_factors(op, v[1], it, x.shape())?;
            Ok((log_resp, v[0]))
        };
        let (mut log_resp, mut prev) = e(&f, 0)?;
        progress(0, prev);
        let mut history = vec![prev];
        let mut converged = false;
        let mut n_iter = 0;
        for it in 1..=self.max_iter {
            f = self.m_step(x, &log_resp.exp()?, d)?;
            let (lr, ll) = e(&f, it)?;
            log_resp = lr;
            history.push(ll);
            progress(it, ll);
            n_iter = it;
            if (ll - prev).abs() < self.tol {
                converged = true;
                break;
            }
            prev = ll;
        }
        f.train_diff = None;
        f.history = history;
        f.converged = converged;
        f.n_iter = n_iter;
        Ok(f)
    }

    /// M-step from responsibilities `resp` (`[n, k]`).
    fn m_step(&self, x: &DeviceTensor, resp: &DeviceTensor, d: usize) -> Result<GmmFit> {
        let (n, k) = (x.shape()[0], self.n_components);
        let nk = resp.sum_axis(0, false)?.add_scalar(10.0 * f32::EPSILON)?; // [k]
        let means = resp.matmul_t(x, true, false)?.div(&nk.reshape(&[k, 1])?)?; // [k, d]
        let diff = x.reshape(&[1, n, d])?.sub(&means.reshape(&[k, 1, d])?)?; // [k, n, d]
        let resp_t = resp.t()?.reshape(&[k, n, 1])?;
        let weights = nk.div_scalar(n as f32)?;
        let dev = x.device();
        match self.covariance_type {
            CovarianceType::Full => {
                let eye = DeviceTensor::eye(dev, d, d)?.mul_scalar(self.reg_covar)?;
                let cov = diff
                    .mul(&resp_t)?
                    .matmul_t(&diff, true, false)?
                    .div(&nk.reshape(&[k, 1, 1])?)?
                    .add(&eye)?;
                let (chol, info) = cov.cholesky()?;
                let prec_chol = chol.tri_inverse(true)?;
                let log_det = chol.diagonal()?.log()?.sum_axis(1, true)?.neg()?; // [k, 1]
                Ok(GmmFit {
                    d,
                    weights,
                    means,
                    covariances: cov,
                    chol,
                    prec_chol,
                    log_det,
                    info,
                    train_diff: Some(diff),
                    history: Vec::new(),
                    converged: false,
                    n_iter: 0,
                })
            }
            CovarianceType::Diag => {
                // resp_k^T diff_k^2 for every k: [k, 1, n] x [k, n, d].
                let var = resp
                    .t()?
                    .reshape(&[k, 1, n])?
                    .matmul(&diff.square()?)?
                    .reshape(&[k, d])?
                    .div(&nk.reshape(&[k, 1])?)?
                    .add_scalar(self.reg_covar)?;
                let sd = var.maximum_scalar(0.0)?.sqrt()?;
                let prec_chol = sd.maximum_scalar(f32::MIN_POSITIVE)?.recip()?;
                let log_det = var
                    .maximum_scalar(f32::MIN_POSITIVE)?
                    .log()?
                    .sum_axis(1, true)?
                    .mul_scalar(-0.5)?;
                // "info": variances that are not positive.
                let info = var.le_scalar(0.0)?.sum_axis(1, false)?;
                Ok(GmmFit {
                    d,
                    weights,
                    means,
                    covariances: var,
                    chol: sd,
                    prec_chol,
                    log_det,
                    info,
                    train_diff: Some(diff),
                    history: Vec::new(),
                    converged: false,
                    n_iter: 0,
                })
            }
        }
    }

    fn fitted(&self, op: &'static str) -> Result<&GmmFit> {
        self.fit
            .as_ref()
            .ok_or_else(|| Error::invalid(op, "the model is not fitted", &[]))
    }

    /// Mixture weights, `[k]`. Returns `Err` before `fit`.
    pub fn weights(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("GaussianMixture::weights")?.weights) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Component means, `[k, d]`. Returns `Err` before `fit`.
    pub fn means(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("GaussianMixture::means")?.means) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Covariances: `[k, d, d]` (full) or `[k, d]` variances (diag), `reg_covar` included.
    /// Returns `Err` before `fit`.
    pub fn covariances(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("GaussianMixture::covariances")?.covariances) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Mean log-likelihood per sample of the parameters after initialization and after
    /// every EM iteration (`n_iter() + 1` entries; the last is the score of the returned
    /// parameters on the training data). Returns `Err` before `fit`.
    pub fn history(&self) -> Result<&[f32]> {
        Ok(&self.fitted("GaussianMixture::history")?.history)
    }

    /// EM iterations (M-steps after the initialization) the fit ran. Returns `Err` before
    /// `fit`.
    pub fn n_iter(&self) -> Result<usize> {
        Ok(self.fitted("GaussianMixture::n_iter")?.n_iter)
    }

    /// Whether the fit stopped on `tol` rather than `max_iter`. Returns `Err` before `fit`.
    pub fn converged(&self) -> Result<bool> {
        Ok(self.fitted("GaussianMixture::converged")?.converged)
    }

    /// Log of `weight_k * N(x | mean_k, cov_k)` for every row of `x` and component, `[m, k]`.
    fn weighted_log_prob(&self, op: &'static str, x: &DeviceTensor) -> Result<DeviceTensor> {
        let f = self.fitted(op)?;
        check_features(op, x, f.d)?;
        weighted_log_prob(self.covariance_type, x, f, None)
    }

    /// Per-sample log-likelihood `log p(x)`, `[m]`. Returns `Err` before `fit` or when `x`
    /// is not an f32 matrix with the fitted feature count.
    pub fn score_samples(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            self.weighted_log_prob("GaussianMixture::score_samples", x)?
                .logsumexp_axis(1, false)
        };
        out.map(Tensor::from_raw)
    }

    /// Mean log-likelihood per sample of `x` (read back). Errors as
    /// [`GaussianMixture::score_samples`].
    pub fn score(&self, x: &Tensor) -> Result<f32> {
        self.score_samples(x)?.mean_all()?.to_scalar()
    }

    /// Posterior probability of each component for every row, `[m, k]` (rows sum to 1).
    /// Errors as [`GaussianMixture::score_samples`].
    pub fn predict_proba(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            self.weighted_log_prob("GaussianMixture::predict_proba", x)?
                .softmax(1)
        };
        out.map(Tensor::from_raw)
    }

    /// The most probable component of every row, u32 `[m]`. Errors as
    /// [`GaussianMixture::score_samples`].
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            self.weighted_log_prob("GaussianMixture::predict", x)?
                .argmax_axis(1, false)
        };
        out.map(Tensor::from_raw)
    }

    /// Bayesian information criterion on `x`: `-2 n score(x) + n_params ln n`, with
    /// `n_params` the number of free parameters (weights, means, covariances). Errors as
    /// [`GaussianMixture::score_samples`].
    pub fn bic(&self, x: &Tensor) -> Result<f32> {
        let f = self.fitted("GaussianMixture::bic")?;
        let n = x.shape().first().copied().unwrap_or(0) as f64;
        let (k, d) = (self.n_components as f64, f.d as f64);
        let cov_params = match self.covariance_type {
            CovarianceType::Full => k * d * (d + 1.0) / 2.0,
            CovarianceType::Diag => k * d,
        };
        let n_params = cov_params + k * d + k - 1.0;
        let s = self.score(x)? as f64;
        Ok((-2.0 * s * n + n_params * n.ln()) as f32)
    }

    /// Draws `n` samples: components by the Gumbel-max trick on the log weights, then
    /// `mean + L z` with `z` standard normal (`L` the Cholesky factor, or the standard
    /// deviations for diag). Returns `(samples [n, d], components u32 [n])`, in random
    /// order (scikit-learn sorts by component). `seed` selects the Philox stream. Returns
    /// `Err` before `fit` or for `n = 0`.
    pub fn sample(&self, n: usize, seed: u64) -> Result<(Tensor, Tensor)> {
        let out = {
            let op = "GaussianMixture::sample";
            let f = self.fitted(op)?;
            if n == 0 {
                return Err(Error::invalid(op, "n must be at least 1", &[]));
            }
            let (k, d) = (self.n_components, f.d);
            let mut s = Stream::new(seed);
            let logw = f.weights.log()?.reshape(&[1, k])?.broadcast_to(&[n, k])?;
            let comp = sample_log_weights(&mut s, &logw)?; // [n]
            let z = s.normal(&f.means, &[n, d])?;
            let mu = f.means.index_select(0, &comp)?;
            let x = match self.covariance_type {
                CovarianceType::Full => f
                    .chol
                    .index_select(0, &comp)?
                    .matmul(&z.reshape(&[n, d, 1])?)?
                    .reshape(&[n, d])?,
                CovarianceType::Diag => f.chol.index_select(0, &comp)?.mul(&z)?,
            };
            Ok((x.add(&mu)?, comp))
        };
        out.map(|(a, b)| (Tensor::from_raw(a), Tensor::from_raw(b)))
    }
}

/// Number of failed factorizations of `f`, as a `[1]` f32 tensor.
fn failures(f: &GmmFit) -> Result<DeviceTensor> {
    f.info
        .to_dtype(DType::F32)?
        .gt_scalar(0.0)?
        .sum_all()?
        .reshape(&[1])
}

fn check_factors(op: &'static str, failed: f32, it: usize, shape: &[usize]) -> Result<()> {
    if failed != 0.0 {
        return Err(Error::invalid(
            op,
            format!(
                "{failed} component covariance(s) not positive definite after reg_covar at \
                 iteration {it}: increase reg_covar, or use fewer components"
            ),
            shape,
        ));
    }
    Ok(())
}

/// `[m, k]` log of weight times density; `diff` is `x - means` (`[k, m, d]`) when the caller
/// already has it.
fn weighted_log_prob(
    t: CovarianceType,
    x: &DeviceTensor,
    f: &GmmFit,
    diff: Option<&DeviceTensor>,
) -> Result<DeviceTensor> {
    let (m, d) = (x.shape()[0], f.d);
    let k = f.means.shape()[0];
    let diff = match diff {
        Some(t) => t.clone(),
        None => x.reshape(&[1, m, d])?.sub(&f.means.reshape(&[k, 1, d])?)?, // [k, m, d]
    };
    let y = match t {
        // y = L^{-1} (x - mean), as rows: diff @ (L^{-1})^T.
        CovarianceType::Full => diff.matmul_t(&f.prec_chol, false, true)?,
        CovarianceType::Diag => diff.mul(&f.prec_chol.reshape(&[k, 1, d])?)?,
    };
    let maha = y.square()?.sum_axis(2, false)?; // [k, m]
    let c = -0.5 * d as f32 * (2.0 * std::f32::consts::PI).ln();
    let log_prob = maha.mul_scalar(-0.5)?.add_scalar(c)?.add(&f.log_det)?; // [k, m]
    log_prob.t()?.add(&f.weights.log()?.reshape(&[1, k])?)
}

/// E-step: `(log_resp [n, k], mean log-likelihood [])`.
fn e_step(t: CovarianceType, x: &DeviceTensor, f: &GmmFit) -> Result<(DeviceTensor, DeviceTensor)> {
    let wlp = weighted_log_prob(t, x, f, f.train_diff.as_ref())?;
    let norm = wlp.logsumexp_axis(1, true)?;
    Ok((wlp.sub(&norm)?, norm.mean_all()?))
}
