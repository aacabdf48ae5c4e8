//! Least squares: linear and ridge regression by the normal equations with a Cholesky solve
//! on the GPU, polynomial features, and a minimum-norm `lstsq` for rank-deficient inputs.

use super::{check_data, check_features, check_finite};
use cinder_autograd::Tensor;
use cinder_device::{DType, DeviceTensor, Error, Result};

/// A pivot of the normal equations' Cholesky factor whose square is below this fraction of
/// the matrix's diagonal entry marks the system as singular in f32: the column is explained
/// by the others to within the precision of the Gram matrix.
const SINGULAR_PIVOT: f32 = 1e-5;

/// Most output columns [`polynomial_features`] builds.
const MAX_POLY_FEATURES: usize = 100_000;

/// Ordinary least squares (`alpha = 0`) or ridge regression (`alpha > 0`), solved by the
/// normal equations `(X^T X + alpha I) w = X^T y` with a Cholesky factorization on the GPU
/// (on centered data when fitting an intercept, which is not penalized).
#[derive(Clone, Debug)]
pub struct LinearRegression {
    /// Fit an intercept (center `x` and `y` first).
    pub fit_intercept: bool,
    /// Ridge penalty (0 for ordinary least squares).
    pub alpha: f32,
    coef: Option<DeviceTensor>,
    intercept: Option<DeviceTensor>,
    targets_1d: bool,
}

impl LinearRegression {
    /// Ordinary least squares with an intercept.
    pub fn new() -> Self {
        LinearRegression {
            fit_intercept: true,
            alpha: 0.0,
            coef: None,
            intercept: None,
            targets_1d: false,
        }
    }

    /// Ridge regression with penalty `alpha` (checked by `fit`: finite, `>= 0`).
    pub fn ridge(alpha: f32) -> Self {
        LinearRegression {
            alpha,
            ..Self::new()
        }
    }

    /// Sets whether an intercept is fitted.
    pub fn with_intercept(mut self, fit_intercept: bool) -> Self {
        self.fit_intercept = fit_intercept;
        self
    }

    /// Fits to `x` (`[n, d]`) and targets `y` (`[n]` or `[n, t]`). Returns `Err` when either
    /// is not finite f32 data of matching rows, when `alpha` is negative or not finite, or
    /// when the normal equations are singular (collinear features or fewer samples than
    /// features with `alpha = 0`; the message suggests ridge or [`lstsq`]).
    pub fn fit(&mut self, x: &Tensor, y: &Tensor) -> Result<&mut Self> {
        let x = &x.raw();
        let y = &y.raw();
        let op = "LinearRegression::fit";
        if self.alpha < 0.0 || !self.alpha.is_finite() {
            return Err(Error::invalid(
                op,
                format!("alpha = {} must be finite and >= 0", self.alpha),
                x.shape(),
            ));
        }
        let (n, d) = check_data(op, x, 1)?;
        let (y2, one_d) = targets(op, y, n)?;
        check_finite(op, &y2)?;
        let (xc, yc, xm, ym) = if self.fit_intercept {
            let xm = x.mean_axis(0, true)?;
            let ym = y2.mean_axis(0, true)?;
            (x.sub(&xm)?, y2.sub(&ym)?, Some(xm), Some(ym))
        } else {
            (x.clone(), y2.clone(), None, None)
        };
        let eye = DeviceTensor::eye(x.device(), d, d)?;
        let a = xc
            .matmul_t(&xc, true, false)?
            .add(&eye.mul_scalar(self.alpha)?)?;
        let b = xc.matmul_t(&yc, true, false)?;
        let l = checked_factor(op, &a)?;
        let coef = l.cholesky_solve(&b)?;
        let t = coef.shape()[1];
        let intercept = match (xm, ym) {
            (Some(xm), Some(ym)) => ym.sub(&xm.matmul(&coef)?)?,
            _ => DeviceTensor::zeros(x.device(), &[1, t])?,
        };
        self.coef = Some(coef);
        self.intercept = Some(intercept);
        self.targets_1d = one_d;
        Ok(self)
    }

    /// The coefficients, `[d, t]` (`t = 1` for 1-D targets). Returns `Err` before `fit`.
    pub fn coef(&self) -> Result<Tensor> {
        let t = {
            self.coef.as_ref().ok_or_else(|| {
                Error::invalid("LinearRegression::coef", "the model is not fitted", &[])
            })
        };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// The intercepts, `[1, t]` (zeros without `fit_intercept`). Returns `Err` before `fit`.
    pub fn intercept(&self) -> Result<Tensor> {
        let t = {
            self.intercept.as_ref().ok_or_else(|| {
                Error::invalid(
                    "LinearRegression::intercept",
                    "the model is not fitted",
                    &[],
                )
            })
        };
        t.map(|t| Tensor::from_raw(t.clone()))
    }

    /// Predictions `x coef + intercept` for `x` (`[m, d]`): `[m]` when fitted on 1-D
    /// targets, `[m, t]` otherwise. Returns `Err` before `fit` or on a feature-count
    /// mismatch.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.raw();
        let out = {
            let coef = self.coef()?;
            let m = check_features("LinearRegression::predict", x, coef.shape()[0])?;
            let p = x.matmul(&coef.raw())?.add(&self.intercept()?.raw())?;
            if self.targets_1d {
                p.reshape(&[m])
            } else {
                Ok(p)
            }
        };
        out.map(Tensor::from_raw)
    }

    /// Coefficient of determination R^2 of the predictions for `x` against `y`, averaged
    /// over targets (read back). Errors as [`LinearRegression::predict`], plus a shape
    /// mismatch between `y` and the predictions.
    pub fn score(&self, x: &Tensor, y: &Tensor) -> Result<f32> {
        let op = "LinearRegression::score";
        let pred = self.predict(x)?.raw();
        let y = &y.raw();
        let (p2, _) = targets(op, &pred, pred.shape()[0])?;
        let (y2, _) = targets(op, y, pred.shape()[0])?;
        if y2.shape() != p2.shape() {
            return Err(Error::shapes(op, y.shape(), pred.shape()));
        }
        let ss_res = y2.sub(&p2)?.square()?.sum_axis(0, false)?;
        let ss_tot = y2
            .sub(&y2.mean_axis(0, true)?)?
            .square()?
            .sum_axis(0, false)?;
        let r2 = ss_res.div(&ss_tot)?.rsub_scalar(1.0)?.mean_all()?;
        r2.to_scalar()
    }
}

impl Default for LinearRegression {
    fn default() -> Self {
        Self::new()
    }
}

/// `y` as `[n, t]`, and whether it was 1-D.
fn targets(op: &'static str, y: &DeviceTensor, n: usize) -> Result<(DeviceTensor, bool)> {
    y.expect_dtype(op, DType::F32)?;
    match y.shape() {
        [m] if *m == n => Ok((y.reshape(&[n, 1])?, true)),
        [m, t] if *m == n && *t > 0 => Ok((y.clone(), false)),
        s => Err(Error::shapes(op, s, &[n])),
    }
}

/// Cholesky factor of the SPD `a`, with one combined readback of the info flag and the
/// smallest relative pivot; `Err` when the system is singular in f32.
fn checked_factor(op: &'static str, a: &DeviceTensor) -> Result<DeviceTensor> {
    let (l, info) = a.cholesky()?;
    let rel = l
        .diagonal()?
        .square()?
        .div(&a.diagonal()?.maximum_scalar(f32::MIN_POSITIVE)?)?
        .min_all()?
        .reshape(&[1])?;
    let bad = info.to_dtype(DType::F32)?.reshape(&[1])?;
    let v = DeviceTensor::concat(&[&bad, &rel], 0)?.to_vec::<f32>()?;
    if v[0] != 0.0 || v[1].is_nan() || v[1] <= SINGULAR_PIVOT {
        return Err(Error::invalid(
            op,
            format!(
                "the normal equations are singular (collinear features, or fewer samples than \
                 features; smallest relative pivot {:.2e}): use ridge (alpha > 0) or lstsq",
                v[1]
            ),
            a.shape(),
        ));
    }
    Ok(l)
}

/// The result of [`lstsq`].
#[derive(Clone, Debug)]
pub struct Lstsq {
    /// Minimum-norm least-squares solution, `[d, t]`.
    pub solution: Tensor,
    /// Singular values of `x`, descending, `[d]`.
    pub singular_values: Tensor,
    /// Number of singular values above the cutoff.
    pub rank: usize,
}

/// Minimum-norm least squares `argmin |x w - y|` for any `x` (`[n, d]`, rank-deficient
/// allowed) and `y` (`[n]` or `[n, t]`), like `numpy.linalg.lstsq`: the pseudo-inverse from
/// the eigen-decomposition of `x^T x` (Jacobi on the GPU), dropping singular values at or
/// below `rcond * max`. Because `x^T x` squares the condition number, `rcond` should be at
/// least about 1e-3 in f32. Reads back the rank. Returns `Err` when the inputs are not
/// finite f32 data of matching rows, when `rcond` is not in `[0, 1)`, or when `d > 256`
/// (the serial eigen kernel is meant for small systems).
pub fn lstsq(x: &Tensor, y: &Tensor, rcond: f32) -> Result<Lstsq> {
    let x = &x.raw();
    let y = &y.raw();
    let op = "lstsq";
    let (n, d) = check_data(op, x, 1)?;
    if d > 256 || !(0.0..1.0).contains(&rcond) {
        return Err(Error::invalid(
            op,
            format!("need at most 256 features and rcond in [0, 1) (got {rcond})"),
            x.shape(),
        ));
    }
    let (y2, _) = targets(op, y, n)?;
    check_finite(op, &y2)?;
    let g = x.matmul_t(x, true, false)?;
    let (w, v) = g.sym_eig()?;
    let sv = w.maximum_scalar(0.0)?.sqrt()?;
    let cutoff = sv.max_all()?.mul_scalar(rcond)?;
    let keep = sv.gt(&cutoff)?; // [d] 0/1
    let inv = keep
        .div(&w.maximum_scalar(f32::MIN_POSITIVE)?)?
        .reshape(&[d, 1])?;
    let xty = x.matmul_t(&y2, true, false)?; // [d, t]
    let solution = v.matmul(&v.matmul_t(&xty, true, false)?.mul(&inv)?)?;
    let rank = keep.sum_all()?.to_scalar()?.round() as usize;
    Ok(Lstsq {
        solution: Tensor::from_raw(solution),
        singular_values: Tensor::from_raw(sv),
        rank,
    })
}

/// Polynomial features of `x` (`[n, d]`) up to `degree`, in scikit-learn's order: the bias
/// column (when `include_bias`), the `d` inputs, then every product of degree 2, 3, ... as
/// combinations with replacement in lexicographic order (`x0^2, x0 x1, ..., x1^2, ...`).
/// Returns `Err` when `x` is not an f32 matrix, `degree` is 0, or more than 100,000 columns
/// would result.
pub fn polynomial_features(x: &Tensor, degree: usize, include_bias: bool) -> Result<Tensor> {
    let x = &x.raw();
    let out = {
        let op = "polynomial_features";
        x.expect_dtype(op, DType::F32)?;
        if x.rank() != 2 || degree == 0 || x.shape()[1] == 0 {
            return Err(Error::invalid(
                op,
                format!("need an [n, d] matrix with d >= 1 and degree >= 1 (got {degree})"),
                x.shape(),
            ));
        }
        let (n, d) = (x.shape()[0], x.shape()[1]);
        // Output columns: C(d + degree, degree), capped before enumerating them.
        let mut count = 1f64;
        for i in 1..=degree {
            count = count * (d + i) as f64 / i as f64;
        }
        if count > MAX_POLY_FEATURES as f64 {
            return Err(Error::invalid(
                op,
                format!(
                    "degree {degree} on {d} features gives {count:.0} columns, over {MAX_POLY_FEATURES}"
                ),
                x.shape(),
            ));
        }
        // Column 0 of x1 is the constant 1; feature j is column j + 1.
        let x1 = DeviceTensor::concat(&[&DeviceTensor::ones(x.device(), &[n, 1])?, x], 1)?;
        let mut combos: Vec<Vec<u32>> = Vec::new();
        for deg in (if include_bias { 0 } else { 1 })..=degree {
            let mut c = vec![0usize; deg];
            loop {
                let mut row: Vec<u32> = c.iter().map(|&j| j as u32 + 1).collect();
                row.resize(degree, 0);
                combos.push(row);
                // Next nondecreasing tuple over 0..d.
                let Some(pos) = (0..deg).rev().find(|&i| c[i] + 1 < d) else {
                    break;
                };
                let v = c[pos] + 1;
                for e in c.iter_mut().skip(pos) {
                    *e = v;
                }
            }
        }
        let f = combos.len();
        let mut out: Option<DeviceTensor> = None;
        for slot in 0..degree {
            let idx: Vec<u32> = combos.iter().map(|r| r[slot]).collect();
            let col = x1.index_select(1, &DeviceTensor::from_slice(x.device(), &idx, &[f])?)?;
            out = Some(match out {
                None => col,
                Some(o) => o.mul(&col)?,
            });
        }
        Ok(out.expect("degree >= 1"))
    };
    out.map(Tensor::from_raw)
}
