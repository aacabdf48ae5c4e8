//! Topic models on a dense `[n_docs, vocab]` count matrix: probabilistic latent semantic
//! analysis by EM ([`Plsa`]) and latent Dirichlet allocation by batch variational Bayes
//! ([`LatentDirichletAllocation`], scikit-learn's `learning_method="batch"`).
//!
//! Every update is a pair of matmuls over the whole count matrix plus elementwise maps
//! (digamma and lgamma are device ops), for all documents at once. The count matrix is one
//! storage binding: at most 2^25 f32 elements (128 MiB on lavapipe), and the E-step holds
//! two more matrices of its shape.

use super::{Stream, check_data, check_features};
use cinder_autograd::Tensor;
use cinder_device::ops::elementwise::lgamma_f64;
use cinder_device::{DeviceTensor, Error, Result};

/// scikit-learn's `EPS` for f32 input (`np.finfo(np.float32).eps`), added to the
/// per-word normalizer of the E-step.
const EPS: f32 = f32::EPSILON;
/// Floor of a probability before its log (only reached where the count is 0).
const TINY: f32 = 1e-30;
/// The batched E-step reads its convergence count back every this many iterations.
const CHECK_EVERY: usize = 5;

/// Checks a count matrix: finite f32 `[n, V]` with no negative entry (one more scalar read
/// back, the minimum).
fn check_counts(op: &'static str, x: &DeviceTensor, d: Option<usize>) -> Result<(usize, usize)> {
    let (n, v) = match d {
        Some(d) => {
            let n = check_features(op, x, d)?;
            if n == 0 {
                return Err(Error::invalid(op, "no documents", x.shape()));
            }
            super::check_finite(op, x)?;
            (n, d)
        }
        None => check_data(op, x, 1)?,
    };
    if x.min_all()?.to_scalar()? < 0.0 {
        return Err(Error::invalid(
            op,
            "negative values in the count matrix",
            x.shape(),
        ));
    }
    Ok((n, v))
}

fn not_fitted(op: &'static str) -> Error {
    Error::invalid(op, "the model is not fitted", &[])
}

/// `exp(E[log theta])` rows of a Dirichlet with parameters `g` (`[r, c]`):
/// `exp(digamma(g) - digamma(sum_j g))`.
fn dirichlet_log_expectation(g: &DeviceTensor) -> Result<DeviceTensor> {
    g.digamma()?.sub(&g.sum_axis(1, true)?.digamma()?)
}

/// `sum_{d,v} x[d,v] * log(sum_k exp(a[d,k] + b[k,v]))`, stably (each side shifted by
/// its maximum), for `a` `[n, k]`, `b` `[k, V]`, `x` `[n, V]` (entries where `x` is 0 add
/// nothing).
fn weighted_log_mix(x: &DeviceTensor, a: &DeviceTensor, b: &DeviceTensor) -> Result<f64> {
    let ma = a.amax_axis(1, true)?; // [n, 1]
    let mb = b.amax_axis(0, true)?; // [1, V]
    let p = a.sub(&ma)?.exp()?.matmul(&b.sub(&mb)?.exp()?)?;
    let lp = p.maximum_scalar(TINY)?.log()?.add(&ma)?.add(&mb)?;
    Ok(x.mul(&lp)?.sum_all()?.to_scalar()? as f64)
}

/// Probabilistic latent semantic analysis (Hofmann's aspect model) fitted by EM on a count
/// matrix: `P(w | d) = sum_z P(z | d) P(w | z)`.
///
/// `fit` starts from uniform document-topic weights and seeded random topic-word
/// distributions (uniform draws in `[0.5, 1.5)`, rows normalized) unless
/// [`Plsa::with_init_components`] gives them, then alternates the E- and M-steps (both
/// from the same posterior) until the log-likelihood's relative gain is at most `tol` or
/// `max_iter` iterations. `transform` folds new documents in: the same document-topic
/// updates with the topics fixed.
#[derive(Clone, Debug)]
pub struct Plsa {
    /// Number of topics.
    pub n_components: usize,
    /// EM iterations at most (default 100).
    pub max_iter: usize,
    /// Relative log-likelihood gain that ends EM (default 1e-5; 0 runs `max_iter`).
    pub tol: f64,
    /// Fold-in iterations of `transform` and `perplexity` (default 50).
    pub fold_in_iter: usize,
    /// Seed of the random topic-word start.
    pub seed: u64,
    init: Option<DeviceTensor>,
    fit: Option<PlsaFit>,
}

#[derive(Clone, Debug)]
struct PlsaFit {
    phi: DeviceTensor,
    theta: DeviceTensor,
    log_likelihood: Vec<f64>,
}

impl Plsa {
    /// `k` topics; `max_iter = 100`, `tol = 1e-5`, `fold_in_iter = 50`, seed 0. Nothing
    /// is checked until [`Plsa::fit`].
    pub fn new(k: usize) -> Self {
        Plsa {
            n_components: k,
            max_iter: 100,
            tol: 1e-5,
            fold_in_iter: 50,
            seed: 0,
            init: None,
            fit: None,
        }
    }
    /// Sets the EM iteration cap.
    pub fn with_max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }
    /// Sets the relative log-likelihood gain that ends EM.
    pub fn with_tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }
    /// Sets the fold-in iterations of `transform` and `perplexity`.
    pub fn with_fold_in_iter(mut self, iters: usize) -> Self {
        self.fold_in_iter = iters;
        self
    }
    /// Sets the seed of the random start.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Starts EM from these topic-word weights (`[k, V]`, positive; rows are normalized)
    /// instead of the seeded draw. Checked by `fit`.
    pub fn with_init_components(mut self, phi: &Tensor) -> Self {
        self.init = Some(phi.raw());
        self
    }

    /// Fits the topics of `counts` (`[n_docs, V]` f32 counts). Returns `Err` when `counts`
    /// is not a finite f32 matrix, holds a negative entry or has no word at all, when `k`
    /// is 0, `max_iter` is 0, or the initial components are not a positive `[k, V]`
    /// matrix. Empty documents are allowed (their topic weights stay uniform).
    pub fn fit(&mut self, counts: &Tensor) -> Result<&mut Self> {
        self.fit_with(counts, |_, _| {})
    }

    /// [`Plsa::fit`] calling `progress(iteration, log_likelihood)` after every EM
    /// iteration with the log-likelihood of the parameters it started from (the scalar
    /// read back for the convergence test). Errors as [`Plsa::fit`].
    pub fn fit_with(
        &mut self,
        counts: &Tensor,
        mut progress: impl FnMut(usize, f64),
    ) -> Result<&mut Self> {
        let op = "Plsa::fit";
        let x = &counts.raw();
        let (n, v) = check_counts(op, x, None)?;
        let k = self.n_components;
        if k == 0 || self.max_iter == 0 {
            return Err(Error::invalid(
                op,
                format!(
                    "n_components = {k} and max_iter = {} must be >= 1",
                    self.max_iter
                ),
                x.shape(),
            ));
        }
        let len = x.sum_axis(1, true)?; // [n, 1]
        if len.sum_all()?.to_scalar()? <= 0.0 {
            return Err(Error::invalid(
                op,
                "the count matrix holds no word",
                x.shape(),
            ));
        }
        let phi = match &self.init {
            Some(p) => {
                if p.shape() != [k, v] {
                    return Err(Error::shapes(op, p.shape(), &[k, v]));
                }
                super::check_finite(op, p)?;
                if p.min_all()?.to_scalar()? <= 0.0 {
                    return Err(Error::invalid(
                        op,
                        "initial components must be positive",
                        p.shape(),
                    ));
                }
                p.clone()
            }
            None => Stream::new(self.seed)
                .uniform(x, &[k, v])?
                .add_scalar(0.5)?,
        };
        let mut phi = phi.div(&phi.sum_axis(1, true)?)?;
        let mut theta = DeviceTensor::full(x.device(), &[n, k], 1.0 / k as f32)?;
        let has = len.gt_scalar(0.0)?;
        let len_safe = len.maximum_scalar(1.0)?;
        let mut lls = Vec::new();
        for it in 0..self.max_iter {
            let p = theta.matmul(&phi)?;
            let r = x.div(&p.maximum_scalar(TINY)?)?;
            let ll = x
                .mul(&p.maximum_scalar(TINY)?.log()?)?
                .sum_all()?
                .to_scalar()? as f64;
            let t_new = theta.mul(&r.matmul_t(&phi, false, true)?)?.div(&len_safe)?;
            let t_new = DeviceTensor::where_cond(&has, &t_new, &theta)?;
            let p_new = phi.mul(&theta.matmul_t(&r, true, false)?)?;
            let mass = p_new.sum_axis(1, true)?.maximum_scalar(TINY)?;
            phi = p_new.div(&mass)?;
            theta = t_new;
            progress(it, ll);
            let prev = lls.last().copied();
            lls.push(ll);
            if let Some(prev) = prev
                && (ll - prev).abs() <= self.tol * ll.abs()
            {
                break;
            }
        }
        self.fit = Some(PlsaFit {
            phi,
            theta,
            log_likelihood: lls,
        });
        Ok(self)
    }

    fn fitted(&self, op: &'static str) -> Result<&PlsaFit> {
        self.fit.as_ref().ok_or_else(|| not_fitted(op))
    }

    /// The topic-word distributions `P(w | z)`, `[k, V]`, rows summing to 1. Returns `Err`
    /// before `fit`.
    pub fn components(&self) -> Result<Tensor> {
        Ok(Tensor::from_raw(
            self.fitted("Plsa::components")?.phi.clone(),
        ))
    }

    /// The fitted documents' topic weights `P(z | d)`, `[n_docs, k]`. Returns `Err` before
    /// `fit`.
    pub fn doc_topics(&self) -> Result<Tensor> {
        Ok(Tensor::from_raw(
            self.fitted("Plsa::doc_topics")?.theta.clone(),
        ))
    }

    /// The log-likelihood at the start of every EM iteration run (non-decreasing in exact
    /// arithmetic). Empty before `fit`.
    pub fn log_likelihood_history(&self) -> &[f64] {
        self.fit.as_ref().map_or(&[], |f| &f.log_likelihood)
    }

    fn fold_in(&self, op: &'static str, x: &DeviceTensor) -> Result<(DeviceTensor, DeviceTensor)> {
        let f = self.fitted(op)?;
        let k = self.n_components;
        let (n, _) = check_counts(op, x, Some(f.phi.shape()[1]))?;
        let len = x.sum_axis(1, true)?;
        let has = len.gt_scalar(0.0)?;
        let len_safe = len.maximum_scalar(1.0)?;
        let mut theta = DeviceTensor::full(x.device(), &[n, k], 1.0 / k as f32)?;
        for _ in 0..self.fold_in_iter {
            let r = x.div(&theta.matmul(&f.phi)?.maximum_scalar(TINY)?)?;
            let t = theta
                .mul(&r.matmul_t(&f.phi, false, true)?)?
                .div(&len_safe)?;
            theta = DeviceTensor::where_cond(&has, &t, &theta)?;
        }
        Ok((theta, f.phi.clone()))
    }

    /// Topic weights `P(z | d)` (`[n, k]`) of new documents by fold-in: `fold_in_iter`
    /// EM updates of the document-topic weights from uniform, topics fixed. Returns `Err`
    /// before `fit`, or when `counts` is not a finite, non-negative f32 `[n, V]` matrix
    /// with the fitted `V` and `n >= 1`.
    pub fn transform(&self, counts: &Tensor) -> Result<Tensor> {
        let (theta, _) = self.fold_in("Plsa::transform", &counts.raw())?;
        Ok(Tensor::from_raw(theta))
    }

    /// `exp(-log-likelihood / word count)` of `counts` with fold-in topic weights (as
    /// [`Plsa::transform`]; the usual pLSA held-out evaluation, optimistic since the
    /// weights are fitted to the same words). Errors as [`Plsa::transform`], and `Err` when
    /// `counts` holds no word.
    pub fn perplexity(&self, counts: &Tensor) -> Result<f64> {
        let op = "Plsa::perplexity";
        let x = &counts.raw();
        let (theta, phi) = self.fold_in(op, x)?;
        let words = x.sum_all()?.to_scalar()? as f64;
        if words <= 0.0 {
            return Err(Error::invalid(
                op,
                "the count matrix holds no word",
                x.shape(),
            ));
        }
        let p = theta.matmul(&phi)?.maximum_scalar(TINY)?.log()?;
        let ll = x.mul(&p)?.sum_all()?.to_scalar()? as f64;
        Ok((-ll / words).exp())
    }
}

/// Latent Dirichlet allocation by batch variational Bayes, as scikit-learn's
/// `LatentDirichletAllocation(learning_method="batch")`.
///
/// `fit` starts the topic-word variational parameters `lambda` (`components`) from a
/// Gamma(100, 1/100) draw, then runs `max_iter` EM iterations: an E-step over all documents
/// (document-topic parameters from a fresh Gamma(100, 1/100) draw, `max_doc_update_iter`
/// fixed-point updates with sklearn's per-document stop when the mean absolute change is
/// below `mean_change_tol`), then `lambda = topic_word_prior + sufficient statistics`.
///
/// The Gamma(100, 1/100) draws use the Wilson-Hilferty form of Marsaglia and Tsang's
/// method without its rejection step, `(d (1 + z / (3 sqrt d))^3) / 100` with `d = 100 -
/// 1/3` and `z` standard normal (Philox): at shape 100 the rejection step would refuse
/// fewer than 0.1% of draws, and the result's mean and variance agree with Gamma(100, 0.01)
/// to about 1e-4. The draws are not numpy's, so a fit is not sklearn's fit with the same
/// seed; it is the same algorithm.
///
/// The E-step runs batched: every document is updated at once by matmuls, and a document
/// whose mean change fell below `mean_change_tol` is frozen by a mask (its last update
/// kept, as sklearn's loop breaks after that update), so each document stops where
/// sklearn's per-document loop would; the batch ends when every document has stopped (the
/// count of active documents is read back every 5 iterations) or after
/// `max_doc_update_iter` iterations.
#[derive(Clone, Debug)]
pub struct LatentDirichletAllocation {
    /// Number of topics.
    pub n_components: usize,
    /// Dirichlet prior of the document-topic weights (`None`: 1 / n_components).
    pub doc_topic_prior: Option<f32>,
    /// Dirichlet prior of the topic-word weights (`None`: 1 / n_components).
    pub topic_word_prior: Option<f32>,
    /// EM iterations (default 10, sklearn's).
    pub max_iter: usize,
    /// E-step iterations at most per document (default 100).
    pub max_doc_update_iter: usize,
    /// Mean absolute change of a document's parameters that stops its E-step (default
    /// 1e-3).
    pub mean_change_tol: f32,
    /// Seed of the Gamma draws.
    pub seed: u64,
    /// Start every E-step of `fit` from a Gamma(100, 1/100) draw (sklearn's, default true);
    /// false starts them from ones, as `transform` does, making `fit` deterministic given
    /// [`LatentDirichletAllocation::with_init_components`].
    pub random_doc_init: bool,
    init: Option<DeviceTensor>,
    fit: Option<LdaFit>,
}

#[derive(Clone, Debug)]
struct LdaFit {
    lambda: DeviceTensor,
    exp_elog_beta: DeviceTensor,
    n_iter: usize,
}

impl LatentDirichletAllocation {
    /// `n_components` topics with sklearn's defaults: both priors 1 / n_components,
    /// `max_iter = 10`, `max_doc_update_iter = 100`, `mean_change_tol = 1e-3`, seed 0.
    /// Nothing is checked until [`LatentDirichletAllocation::fit`].
    pub fn new(n_components: usize) -> Self {
        LatentDirichletAllocation {
            n_components,
            doc_topic_prior: None,
            topic_word_prior: None,
            max_iter: 10,
            max_doc_update_iter: 100,
            mean_change_tol: 1e-3,
            seed: 0,
            random_doc_init: true,
            init: None,
            fit: None,
        }
    }
    /// Sets the document-topic prior (alpha).
    pub fn with_doc_topic_prior(mut self, alpha: f32) -> Self {
        self.doc_topic_prior = Some(alpha);
        self
    }
    /// Sets the topic-word prior (eta).
    pub fn with_topic_word_prior(mut self, eta: f32) -> Self {
        self.topic_word_prior = Some(eta);
        self
    }
    /// Sets the number of EM iterations.
    pub fn with_max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }
    /// Sets the E-step iteration cap.
    pub fn with_max_doc_update_iter(mut self, iters: usize) -> Self {
        self.max_doc_update_iter = iters;
        self
    }
    /// Sets the E-step's per-document stopping threshold.
    pub fn with_mean_change_tol(mut self, tol: f32) -> Self {
        self.mean_change_tol = tol;
        self
    }
    /// Sets the seed of the Gamma draws.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Sets whether `fit`'s E-steps start from a Gamma draw (true, sklearn's) or from ones.
    pub fn with_random_doc_init(mut self, random: bool) -> Self {
        self.random_doc_init = random;
        self
    }
    /// Starts `fit` from these topic-word parameters (`[k, V]`, positive) instead of the
    /// Gamma draw. Checked by `fit`.
    pub fn with_init_components(mut self, lambda: &Tensor) -> Self {
        self.init = Some(lambda.raw());
        self
    }

    fn priors(&self) -> (f32, f32) {
        let k = self.n_components.max(1) as f32;
        (
            self.doc_topic_prior.unwrap_or(1.0 / k),
            self.topic_word_prior.unwrap_or(1.0 / k),
        )
    }

    /// Gamma(100, 1/100) samples of `shape` (see the type's documentation).
    fn gamma100(s: &mut Stream, like: &DeviceTensor, shape: &[usize]) -> Result<DeviceTensor> {
        let d = 100.0f32 - 1.0 / 3.0;
        let c = 1.0 / (3.0 * d.sqrt());
        let u = s
            .normal(like, shape)?
            .affine(c, 1.0)?
            .maximum_scalar(1e-3)?;
        u.square()?.mul(&u)?.mul_scalar(d / 100.0)
    }

    /// The batched E-step: document-topic parameters `[n, k]` from `init`, and with `sstats`
    /// the sufficient statistics `[k, V]` (already multiplied by `exp_elog_beta`, as
    /// sklearn's `_e_step`).
    fn e_step(
        &self,
        x: &DeviceTensor,
        eb: &DeviceTensor,
        init: DeviceTensor,
        sstats: bool,
    ) -> Result<(DeviceTensor, Option<DeviceTensor>)> {
        let (alpha, _) = self.priors();
        let n = x.shape()[0];
        let mut gamma = init;
        let mut et = dirichlet_log_expectation(&gamma)?.exp()?;
        let mut active = DeviceTensor::ones(x.device(), &[n, 1])?;
        for it in 0..self.max_doc_update_iter {
            let norm = et.matmul(eb)?.add_scalar(EPS)?;
            let ratio = x.div(&norm)?;
            let g_new = et
                .mul(&ratio.matmul_t(eb, false, true)?)?
                .add_scalar(alpha)?;
            let et_new = dirichlet_log_expectation(&g_new)?.exp()?;
            let change = g_new.sub(&gamma)?.abs()?.mean_axis(1, true)?;
            gamma = DeviceTensor::where_cond(&active, &g_new, &gamma)?;
            et = DeviceTensor::where_cond(&active, &et_new, &et)?;
            active = active.mul(&change.ge_scalar(self.mean_change_tol)?)?;
            if (it + 1) % CHECK_EVERY == 0 && active.sum_all()?.to_scalar()? == 0.0 {
                break;
            }
        }
        let ss = if sstats {
            let norm = et.matmul(eb)?.add_scalar(EPS)?;
            Some(et.matmul_t(&x.div(&norm)?, true, false)?.mul(eb)?)
        } else {
            None
        };
        Ok((gamma, ss))
    }

    /// Fits the topics of `counts` (`[n_docs, V]` f32 counts). Returns `Err` when `counts`
    /// is not a finite f32 matrix or holds a negative entry, when `n_components` is 0,
    /// `max_doc_update_iter` is 0, a prior is not positive, or the initial components are
    /// not a positive `[k, V]` matrix. Empty documents are allowed (as sklearn: their
    /// parameters are the prior). `max_iter = 0` keeps the initial components.
    pub fn fit(&mut self, counts: &Tensor) -> Result<&mut Self> {
        self.fit_with(counts, |_| {})
    }

    /// [`LatentDirichletAllocation::fit`] calling `progress(iteration)` after every EM
    /// iteration. Errors as [`LatentDirichletAllocation::fit`].
    pub fn fit_with(
        &mut self,
        counts: &Tensor,
        mut progress: impl FnMut(usize),
    ) -> Result<&mut Self> {
        let op = "LatentDirichletAllocation::fit";
        let x = &counts.raw();
        let (n, v) = check_counts(op, x, None)?;
        let k = self.n_components;
        let (alpha, eta) = self.priors();
        if k == 0
            || self.max_doc_update_iter == 0
            || alpha.is_nan()
            || alpha <= 0.0
            || eta.is_nan()
            || eta <= 0.0
        {
            return Err(Error::invalid(
                op,
                format!(
                    "n_components = {k} and max_doc_update_iter = {} must be >= 1 and the \
                     priors ({alpha}, {eta}) positive",
                    self.max_doc_update_iter
                ),
                x.shape(),
            ));
        }
        let mut s = Stream::new(self.seed);
        let mut lambda = match &self.init {
            Some(l) => {
                if l.shape() != [k, v] {
                    return Err(Error::shapes(op, l.shape(), &[k, v]));
                }
                super::check_finite(op, l)?;
                if l.min_all()?.to_scalar()? <= 0.0 {
                    return Err(Error::invalid(
                        op,
                        "initial components must be positive",
                        l.shape(),
                    ));
                }
                l.clone()
            }
            None => Self::gamma100(&mut s, x, &[k, v])?,
        };
        let mut eb = dirichlet_log_expectation(&lambda)?.exp()?;
        for it in 0..self.max_iter {
            let init = if self.random_doc_init {
                Self::gamma100(&mut s, x, &[n, k])?
            } else {
                DeviceTensor::ones(x.device(), &[n, k])?
            };
            let (_, ss) = self.e_step(x, &eb, init, true)?;
            let ss = ss.ok_or_else(|| Error::invalid(op, "no sufficient statistics", &[]))?;
            lambda = ss.add_scalar(eta)?;
            eb = dirichlet_log_expectation(&lambda)?.exp()?;
            progress(it);
        }
        self.fit = Some(LdaFit {
            lambda,
            exp_elog_beta: eb,
            n_iter: self.max_iter,
        });
        Ok(self)
    }

    fn fitted(&self, op: &'static str) -> Result<&LdaFit> {
        self.fit.as_ref().ok_or_else(|| not_fitted(op))
    }

    /// The topic-word variational parameters `lambda` (sklearn's `components_`), `[k, V]`;
    /// normalize the rows for the topic-word distributions. Returns `Err` before `fit`.
    pub fn components(&self) -> Result<Tensor> {
        Ok(Tensor::from_raw(
            self.fitted("LatentDirichletAllocation::components")?
                .lambda
                .clone(),
        ))
    }

    /// EM iterations run. Returns `Err` before `fit`.
    pub fn n_iter(&self) -> Result<usize> {
        Ok(self.fitted("LatentDirichletAllocation::n_iter")?.n_iter)
    }

    fn unnormalized(&self, op: &'static str, x: &DeviceTensor) -> Result<DeviceTensor> {
        let f = self.fitted(op)?;
        let (n, _) = check_counts(op, x, Some(f.lambda.shape()[1]))?;
        let ones = DeviceTensor::ones(x.device(), &[n, self.n_components])?;
        Ok(self.e_step(x, &f.exp_elog_beta, ones, false)?.0)
    }

    /// The variational document-topic parameters `gamma` (`[n, k]`) of `counts` by the
    /// E-step from ones with the fitted topics (sklearn's `_unnormalized_transform`).
    /// Returns `Err` before `fit`, or when `counts` is not a finite, non-negative f32
    /// `[n, V]` matrix with the fitted `V` and `n >= 1`.
    pub fn unnormalized_transform(&self, counts: &Tensor) -> Result<Tensor> {
        Ok(Tensor::from_raw(self.unnormalized(
            "LatentDirichletAllocation::unnormalized_transform",
            &counts.raw(),
        )?))
    }

    /// The document-topic distributions (`[n, k]`, rows summing to 1) of `counts`: the
    /// E-step's parameters normalized (sklearn's `transform`). Errors as
    /// [`LatentDirichletAllocation::unnormalized_transform`].
    pub fn transform(&self, counts: &Tensor) -> Result<Tensor> {
        let g = self.unnormalized("LatentDirichletAllocation::transform", &counts.raw())?;
        Ok(Tensor::from_raw(g.div(&g.sum_axis(1, true)?)?))
    }

    /// [`LatentDirichletAllocation::fit`] then [`LatentDirichletAllocation::transform`] of
    /// the same counts. Errors as both.
    pub fn fit_transform(&mut self, counts: &Tensor) -> Result<Tensor> {
        self.fit(counts)?;
        self.transform(counts)
    }

    /// sklearn's `_approx_bound(counts, doc_topic, sub_sampling=False)`: the evidence lower
    /// bound `E[log p(docs | theta, beta)] + E[log p(theta | alpha) - log q(theta | gamma)] +
    /// E[log p(beta | eta) - log q(beta | lambda)]` for the variational document-topic
    /// parameters `doc_topic` (`[n, k]`, positive, e.g. from
    /// [`LatentDirichletAllocation::unnormalized_transform`]). Returns `Err` before `fit`
    /// or when the shapes disagree.
    pub fn bound(&self, counts: &Tensor, doc_topic: &Tensor) -> Result<f64> {
        let op = "LatentDirichletAllocation::bound";
        let f = self.fitted(op)?;
        let x = &counts.raw();
        let g = &doc_topic.raw();
        let (k, v) = (self.n_components, f.lambda.shape()[1]);
        let (n, _) = check_counts(op, x, Some(v))?;
        if g.shape() != [n, k] {
            return Err(Error::shapes(op, g.shape(), &[n, k]));
        }
        let (alpha, eta) = self.priors();
        let elog_theta = dirichlet_log_expectation(g)?;
        let elog_beta = dirichlet_log_expectation(&f.lambda)?;
        let mut score = weighted_log_mix(x, &elog_theta, &elog_beta)?;
        score += loglikelihood(alpha, g, &elog_theta, k)?;
        score += loglikelihood(eta, &f.lambda, &elog_beta, v)?;
        Ok(score)
    }

    /// sklearn's `score`: the bound of `counts` with their E-step parameters. Errors as
    /// [`LatentDirichletAllocation::unnormalized_transform`].
    pub fn score(&self, counts: &Tensor) -> Result<f64> {
        let g = self.unnormalized_transform(counts)?;
        self.bound(counts, &g)
    }

    /// sklearn's `perplexity(counts)`: `exp(-bound / word count)` with the E-step's
    /// parameters of `counts`. Errors as
    /// [`LatentDirichletAllocation::unnormalized_transform`], and `Err` when `counts` holds
    /// no word.
    pub fn perplexity(&self, counts: &Tensor) -> Result<f64> {
        let op = "LatentDirichletAllocation::perplexity";
        let words = counts.raw().sum_all()?.to_scalar()? as f64;
        let b = self.score(counts)?;
        if words.is_nan() || words <= 0.0 {
            return Err(Error::invalid(
                op,
                "the count matrix holds no word",
                &counts.shape(),
            ));
        }
        Ok((-b / words).exp())
    }
}

/// sklearn's `_loglikelihood(prior, distr, dirichlet_distr, size)`:
/// `sum((prior - distr) * E[log]) + sum(lgamma(distr)) - rows * cols * lgamma(prior) +
/// rows * lgamma(prior * size) - sum(lgamma(rowsum(distr)))`.
fn loglikelihood(
    prior: f32,
    distr: &DeviceTensor,
    elog: &DeviceTensor,
    size: usize,
) -> Result<f64> {
    let (rows, cols) = (distr.shape()[0] as f64, distr.shape()[1] as f64);
    let a = distr
        .rsub_scalar(prior)?
        .mul(elog)?
        .sum_all()?
        .to_scalar()? as f64;
    let b = distr.lgamma()?.sum_all()?.to_scalar()? as f64;
    let c = distr.sum_axis(1, false)?.lgamma()?.sum_all()?.to_scalar()? as f64;
    let p = prior as f64;
    Ok(a + b - rows * cols * lgamma_f64(p) + rows * lgamma_f64(p * size as f64) - c)
}
