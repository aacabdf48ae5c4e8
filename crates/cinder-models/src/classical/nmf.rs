//! Non-negative matrix factorization by multiplicative updates (scikit-learn's
//! `NMF(solver="mu")`), for the Frobenius norm and the generalized Kullback-Leibler
//! divergence, on the GPU.

use super::rows::{Blocks, Rows};
use super::{Stream, check_features};
use cinder_autograd::Tensor;
use cinder_device::{DType, DeviceTensor, Error, Result};

/// scikit-learn's `EPSILON` (`np.finfo(np.float32).eps`): the floor of denominators.
const EPS: f32 = f32::EPSILON;
/// scikit-learn zeroes entries of `H` below `np.finfo(np.float64).eps` for `beta <= 1`.
const EPS64: f32 = f64::EPSILON as f32;

/// The divergence `X ~ W H` is fitted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BetaLoss {
    /// Squared Frobenius norm (beta = 2), the default.
    Frobenius,
    /// Generalized Kullback-Leibler divergence (beta = 1).
    KullbackLeibler,
}

/// How the factors start.
#[derive(Clone, Debug)]
pub enum NmfInit {
    /// scikit-learn's `init="random"`: with `avg = sqrt(mean(X) / k)`,
    /// `H = |avg N(0, 1)|` (`[k, d]`, drawn first) and `W = |avg N(0, 1)|` (`[n, k]`), from
    /// the seeded Philox stream.
    Random,
    /// Given factors `(W [n, k], H [k, d])`, f32, non-negative and not all zero
    /// (scikit-learn's `init="custom"`); checked by `fit`.
    Custom(Tensor, Tensor),
}

/// NMF by multiplicative updates. Configure with the builder methods, then [`Nmf::fit`] or
/// [`Nmf::fit_transform`].
///
/// One iteration updates `W`, then `H`, exactly as scikit-learn's
/// `_multiplicative_update_w` / `_multiplicative_update_h` without regularization (scikit-
/// learn's default `alpha_W = alpha_H = 0`; there is no regularization here): Frobenius
/// `W *= X H^T / (W H H^T)`, `H *= W^T X / (W^T W H)`; Kullback-Leibler
/// `W *= (X / WH) H^T / rowsum(H)`, `H *= W^T (X / WH) / colsum(W)`, with `WH` floored at
/// `EPSILON` (f32 machine epsilon), zero denominators replaced by `EPSILON`, and (KL) entries
/// of `H` below f64's epsilon set to 0. Every heavy product is a matmul on the GPU; `W` is
/// held transposed (`[k, n]`) so that the products with the data read unit strides. With
/// `tol > 0` the error is read back every 10 iterations (the only readback of the loop) and
/// iterations stop when `(previous - current) / initial < tol`, as scikit-learn.
#[derive(Clone, Debug)]
pub struct Nmf {
    /// Number of components `k`.
    pub n_components: usize,
    /// Frobenius or Kullback-Leibler.
    pub beta_loss: BetaLoss,
    /// Starting factors.
    pub init: NmfInit,
    /// Iterations at most.
    pub max_iter: usize,
    /// Relative decrease of the error (from the initial error) per 10 iterations below
    /// which iterations stop; 0 runs all `max_iter`.
    pub tol: f32,
    /// Seed of the random initialization.
    pub seed: u64,
    fit: Option<NmfFit>,
}

#[derive(Clone, Debug)]
struct NmfFit {
    /// `[k, d]`.
    h: DeviceTensor,
    /// `[n, k]` of the training data.
    w: DeviceTensor,
    err: f32,
    n_iter: usize,
}

impl Nmf {
    /// `n_components` components with scikit-learn's `solver="mu"` defaults: Frobenius,
    /// random init, `max_iter = 200`, `tol = 1e-4`, seed 0. Nothing is checked until
    /// `fit`.
    pub fn new(n_components: usize) -> Self {
        Nmf {
            n_components,
            beta_loss: BetaLoss::Frobenius,
            init: NmfInit::Random,
            max_iter: 200,
            tol: 1e-4,
            seed: 0,
            fit: None,
        }
    }

    /// Sets the divergence.
    pub fn with_beta_loss(mut self, beta_loss: BetaLoss) -> Self {
        self.beta_loss = beta_loss;
        self
    }

    /// Sets the initialization.
    pub fn with_init(mut self, init: NmfInit) -> Self {
        self.init = init;
        self
    }

    /// Sets the iteration cap (at least 1; checked by `fit`).
    pub fn with_max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Sets the tolerance (finite, `>= 0`; 0 runs every iteration; checked by `fit`).
    pub fn with_tol(mut self, tol: f32) -> Self {
        self.tol = tol;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fits `W` and `H` to `x` (`[n, d]`, f32). Returns `Err` when `x` is not a finite,
    /// non-negative f32 matrix, when `n_components` is 0 or larger than `min(n, d)`, when
    /// `max_iter` is 0 or `tol` negative or not finite, or when custom factors do not have
    /// the shapes `[n, k]` and `[k, d]`, are not finite, have a negative entry or are all
    /// zero. `x` may be [`super::RowBlocks`] (data past one binding): every product runs
    /// block by block (`W`'s rows follow the blocks), with the same result as on one tensor.
    pub fn fit(&mut self, x: &(impl Rows + ?Sized)) -> Result<&mut Self> {
        self.fit_raw(&Blocks::new("Nmf::fit", x, 1)?)?;
        Ok(self)
    }

    /// Fits as [`Nmf::fit`] and returns `W`, `[n, k]`. Errors as [`Nmf::fit`].
    pub fn fit_transform(&mut self, x: &(impl Rows + ?Sized)) -> Result<Tensor> {
        self.fit_raw(&Blocks::new("Nmf::fit", x, 1)?)?;
        let w = { Ok(&self.fitted("Nmf::fit_transform")?.w) };
        w.map(|w| Tensor::from_raw(w.clone()))
    }

    /// Checks the iteration settings and that the (already checked finite) blocks are
    /// non-negative; returns `(n, d)`.
    fn check_params(&self, op: &'static str, x: &Blocks) -> Result<(usize, usize)> {
        if self.max_iter == 0 || self.tol < 0.0 || !self.tol.is_finite() {
            return Err(Error::invalid(
                op,
                format!(
                    "need max_iter >= 1 and a finite tol >= 0 (got {}, {})",
                    self.max_iter, self.tol
                ),
                &x.shape(),
            ));
        }
        for p in &x.parts {
            check_non_negative(op, "the data", p)?;
        }
        Ok((x.n, x.d))
    }

    fn fit_raw(&mut self, x: &Blocks) -> Result<()> {
        let op = "Nmf::fit";
        let (n, d) = self.check_params(op, x)?;
        let k = self.n_components;
        if k == 0 || k > n.min(d) {
            return Err(Error::invalid(
                op,
                format!("n_components = {k} must be in 1..=min(n_samples, n_features)"),
                &x.shape(),
            ));
        }
        let (w, h) = match &self.init {
            NmfInit::Random => {
                let avg = mean_all(x)?
                    .div_scalar(k as f32)?
                    .sqrt()?
                    .reshape(&[1, 1])?;
                let mut s = Stream::new(self.seed);
                let h = s.normal(x.first(), &[k, d])?.mul(&avg)?.abs()?;
                let w = s.normal(x.first(), &[n, k])?.mul(&avg)?.abs()?;
                (w, h)
            }
            NmfInit::Custom(w, h) => {
                let (w, h) = (w.raw(), h.raw());
                check_factor(op, "W", &w, &[n, k])?;
                check_factor(op, "H", &h, &[k, d])?;
                (w, h)
            }
        };
        let (wt, h, err, n_iter) = self.run(x, w.t()?, h, true)?;
        self.fit = Some(NmfFit {
            h,
            w: wt.t()?,
            err,
            n_iter,
        });
        Ok(())
    }

    /// The multiplicative updates from `wt` (`[k, n]`) and `h` (`[k, d]`), `H` fixed
    /// unless `update_h`; returns the factors, the final error and the iterations run.
    fn run(
        &self,
        x: &Blocks,
        mut wt: DeviceTensor,
        mut h: DeviceTensor,
        update_h: bool,
    ) -> Result<(DeviceTensor, DeviceTensor, f32, usize)> {
        // Per block: x_b^T, [d, n_b].
        let xts = x.parts.iter().map(|p| p.t()).collect::<Result<Vec<_>>>()?;
        let beta = self.beta_loss;
        let init_err = divergence(beta, x, &wt, &h)?.to_scalar()?;
        let mut prev = init_err;
        let mut n_iter = 0;
        // With H fixed, its products are computed once (scikit-learn keeps them too).
        let mut hht: Option<DeviceTensor> = None;
        let mut h_sum: Option<DeviceTensor> = None;
        for it in 1..=self.max_iter {
            wt = match beta {
                BetaLoss::Frobenius => {
                    let hh = match &hht {
                        Some(t) => t.clone(),
                        None => h.matmul_t(&h, false, true)?, // [k, k]
                    };
                    let num = x.map_cols(&wt, |b, _| h.matmul(&xts[b]))?; // [k, n] = (X H^T)^T
                    let den = hh.matmul(&wt)?; // (W H H^T)^T
                    if !update_h {
                        hht = Some(hh);
                    }
                    wt.mul(&num.div(&guard(&den)?)?)?
                }
                BetaLoss::KullbackLeibler => {
                    // (X / WH)^T = X^T / (H^T W^T), [d, n].
                    let num = x.map_cols(&wt, |b, wt_b| {
                        let wh_t = h.matmul_t(wt_b, true, false)?;
                        let ratio_t = xts[b].div(&wh_t.maximum_scalar(EPS)?)?;
                        h.matmul(&ratio_t) // [k, n_b]
                    })?;
                    let hs = match &h_sum {
                        Some(t) => t.clone(),
                        None => h.sum_axis(1, true)?, // [k, 1]
                    };
                    let upd = wt.mul(&num.div(&guard(&hs)?)?)?;
                    if !update_h {
                        h_sum = Some(hs);
                    }
                    upd
                }
            };
            if update_h {
                h = match beta {
                    BetaLoss::Frobenius => {
                        let num = x.sum_split(&wt, 1, |x_b, wt_b| wt_b.matmul(x_b))?; // W^T X
                        let den = wt.matmul_t(&wt, false, true)?.matmul(&h)?; // W^T W H
                        h.mul(&num.div(&guard(&den)?)?)?
                    }
                    BetaLoss::KullbackLeibler => {
                        let num = x.sum_split(&wt, 1, |x_b, wt_b| {
                            let wh = wt_b.matmul_t(&h, true, false)?; // [n_b, d]
                            let ratio = x_b.div(&wh.maximum_scalar(EPS)?)?;
                            wt_b.matmul(&ratio) // [k, d]
                        })?;
                        let ws = wt.sum_axis(1, true)?; // [k, 1]
                        let ws = ws.add(&ws.eq_scalar(0.0)?)?; // W_sum[W_sum == 0] = 1
                        let h = h.mul(&num.div(&guard(&ws)?)?)?;
                        h.mul(&h.ge_scalar(EPS64)?)?
                    }
                };
            }
            n_iter = it;
            if self.tol > 0.0 && it.is_multiple_of(10) {
                let err = divergence(beta, x, &wt, &h)?.to_scalar()?;
                if (prev - err) / init_err < self.tol {
                    break;
                }
                prev = err;
            }
        }
        let err = divergence(beta, x, &wt, &h)?.to_scalar()?;
        Ok((wt, h, err, n_iter))
    }

    fn fitted(&self, op: &'static str) -> Result<&NmfFit> {
        self.fit
            .as_ref()
            .ok_or_else(|| Error::invalid(op, "the model is not fitted", &[]))
    }

    /// The components `H`, `[k, d]`. Returns `Err` before `fit`.
    pub fn components(&self) -> Result<Tensor> {
        let t = { Ok(&self.fitted("Nmf::components")?.h) };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// scikit-learn's `reconstruction_err_`: `|X - W H|_F` (Frobenius) or
    /// `sqrt(2 D_KL(X | W H))` (Kullback-Leibler) on the training data. Returns `Err`
    /// before `fit`.
    pub fn reconstruction_err(&self) -> Result<f32> {
        Ok(self.fitted("Nmf::reconstruction_err")?.err)
    }

    /// Iterations the fit ran. Returns `Err` before `fit`.
    pub fn n_iter(&self) -> Result<usize> {
        Ok(self.fitted("Nmf::n_iter")?.n_iter)
    }

    /// `W` for new data `x` (`[m, d]`) with `H` fixed: scikit-learn's `transform`, which
    /// starts every entry at `sqrt(mean(x) / k)` and runs the `W` updates with the fit's
    /// `max_iter` and `tol`. Returns `[m, k]`; `Err` before `fit` or when `x` is not a
    /// finite, non-negative f32 matrix with the fitted feature count.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            let op = "Nmf::transform";
            let f = self.fitted(op)?;
            check_features(op, x, f.h.shape()[1])?;
            let x = &Blocks::new(op, &Tensor::from_raw(x.clone()), 1)?;
            let (m, _) = self.check_params(op, x)?;
            let k = self.n_components;
            let avg = mean_all(x)?
                .div_scalar(k as f32)?
                .sqrt()?
                .reshape(&[1, 1])?;
            let wt = DeviceTensor::ones(x.first().device(), &[k, m])?.mul(&avg)?;
            let (wt, _, _, _) = self.run(x, wt, f.h.clone(), false)?;
            wt.t()
        };
        out.map(Tensor::from_raw)
    }
}

/// The mean of every entry of the blocks, as a scalar tensor.
fn mean_all(x: &Blocks) -> Result<DeviceTensor> {
    let mut s = x.parts[0].sum_all()?;
    for p in &x.parts[1..] {
        s = s.add(&p.sum_all()?)?;
    }
    s.div_scalar((x.n * x.d) as f32)
}

/// `t` with zeros replaced by `EPSILON` (scikit-learn's `denominator[denominator == 0]`).
fn guard(t: &DeviceTensor) -> Result<DeviceTensor> {
    t.add(&t.eq_scalar(0.0)?.mul_scalar(EPS)?)
}

/// scikit-learn's `_beta_divergence(X, W, H, beta, square_root=True)` as a scalar tensor:
/// `|X - WH|_F`, or for KL `sqrt(2 max(0, sum_{X > eps} X log(X / max(WH, eps))
/// + sum(WH) - sum_{X > eps} X))`. `wt` is `W^T`, `[k, n]`.
fn divergence(
    beta: BetaLoss,
    x: &Blocks,
    wt: &DeviceTensor,
    h: &DeviceTensor,
) -> Result<DeviceTensor> {
    match beta {
        BetaLoss::Frobenius => x
            .sum_split(wt, 1, |x_b, wt_b| {
                let wh = wt_b.matmul_t(h, true, false)?; // [n_b, d]
                x_b.sub(&wh)?.square()?.sum_all()
            })?
            .sqrt(),
        BetaLoss::KullbackLeibler => {
            // sum_{X > eps} X log(X / max(WH, eps)) - sum_{X > eps} X, over the blocks.
            let terms = x.sum_split(wt, 1, |x_b, wt_b| {
                let wh = wt_b.matmul_t(h, true, false)?; // [n_b, d]
                let xm = x_b.mul(&x_b.gt_scalar(EPS)?)?;
                let log = x_b
                    .maximum_scalar(EPS)?
                    .div(&wh.maximum_scalar(EPS)?)?
                    .log()?;
                xm.mul(&log)?.sum_all()?.sub(&xm.sum_all()?)
            })?;
            let k = wt.shape()[0];
            let sum_wh = wt
                .sum_axis(1, false)?
                .reshape(&[1, k])?
                .matmul(&h.sum_axis(1, true)?)?
                .reshape(&[])?;
            terms
                .add(&sum_wh)?
                .maximum_scalar(0.0)?
                .mul_scalar(2.0)?
                .sqrt()
        }
    }
}

/// `Err` when `t` has a negative entry (one scalar read back: the minimum).
fn check_non_negative(op: &'static str, what: &str, t: &DeviceTensor) -> Result<()> {
    let lo = t.min_all()?.to_scalar()?;
    if lo < 0.0 {
        return Err(Error::invalid(
            op,
            format!("{what} must be non-negative (minimum {lo})"),
            t.shape(),
        ));
    }
    Ok(())
}

/// Checks a custom factor: f32, `shape`, finite, non-negative, not all zero.
fn check_factor(op: &'static str, name: &str, t: &DeviceTensor, shape: &[usize]) -> Result<()> {
    t.expect_dtype(op, DType::F32)?;
    if t.shape() != shape {
        return Err(Error::shapes(op, t.shape(), shape));
    }
    super::check_finite(op, t)?;
    check_non_negative(op, &format!("the initial {name}"), t)?;
    if t.max_all()?.to_scalar()? == 0.0 {
        return Err(Error::invalid(
            op,
            format!("the initial {name} is all zeros (multiplicative updates cannot leave 0)"),
            t.shape(),
        ));
    }
    Ok(())
}
