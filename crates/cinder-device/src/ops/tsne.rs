//! Exact t-SNE kernels (`shaders/tsne.wgsl`): the per-point perplexity calibration by binary
//! search, the symmetrized joint probabilities, the per-row sums of the KL gradient and the
//! momentum-and-gains step, as scikit-learn's `TSNE(method="exact")` computes them.
//!
//! Each kernel runs one invocation per row (per element for the symmetrization) straight
//! from global memory, with no workgroup memory or barriers. The only `n x n` matrices are
//! the squared distances, the conditional probabilities and the joint `P`; each is one
//! binding, so `n` is limited to the largest square matrix the device binds
//! ([`crate::Device::max_square_side`]: 5,792 under lavapipe's 128 MiB).

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_1d};
use crate::tensor::{DType, DeviceTensor};

/// Invocations per workgroup (`WG` in the shader).
const WG: u32 = 64;

/// Widest embedding the gradient kernel handles (`MAX_K` in the shader).
pub const TSNE_MAX_COMPONENTS: usize = 4;

/// Host constants the shader repeats (see [`super::Contract`]).
pub(crate) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        family: "tsne",
        name: "MAX_K",
        value: TSNE_MAX_COMPONENTS as u64,
    }]
}

fn kernel(entry: &'static str, reads: u32, writes: u32) -> Kernel {
    Kernel::new("tsne", entry, reads, writes).with_workgroup((WG, 1, 1))
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![
        kernel("perplexity", 1, 2),
        kernel("symmetrize", 2, 1),
        kernel("grad", 2, 3),
        kernel("update", 3, 4),
    ]
}

/// Parameters in the order of `struct P` in `tsne.wgsl`.
fn params(n: usize, k: usize, steps: u32, with_error: bool, f: [f32; 4]) -> Params {
    Params::new()
        .usize(n)
        .usize(k)
        .u32(steps)
        .u32(with_error as u32)
        .f32(f[0])
        .f32(f[1])
        .f32(f[2])
        .f32(f[3])
}

fn expect_matrix(op: &'static str, t: &DeviceTensor, rows: usize, cols: usize) -> Result<()> {
    t.expect_dtype(op, DType::F32)?;
    if t.shape() != [rows, cols] {
        return Err(Error::shapes(op, t.shape(), &[rows, cols]));
    }
    Ok(())
}

fn square(op: &'static str, t: &DeviceTensor) -> Result<usize> {
    t.expect_dtype(op, DType::F32)?;
    let s = t.shape();
    if s.len() != 2 || s[0] != s[1] {
        return Err(Error::invalid(op, "expected a square [n, n] matrix", s));
    }
    Ok(s[0])
}

/// The f32 numbers of one t-SNE gradient descent step (scikit-learn's `_gradient_descent`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TsneStep {
    /// The gradient's constant `2 (dof + 1) / dof`.
    pub coef: f32,
    /// Learning rate.
    pub learning_rate: f32,
    /// Momentum of the update.
    pub momentum: f32,
    /// Smallest gain.
    pub min_gain: f32,
}

impl DeviceTensor {
    /// Conditional probabilities of t-SNE from the squared distances `self` (`[n, n]`,
    /// symmetric; the kernel reads column `i` for point `i` and never the diagonal), by
    /// scikit-learn's per-point binary search on the precision `beta` (start 1, at most
    /// `steps` evaluations, stop when the entropy in nats is within `tol` of
    /// `ln(perplexity)`). Returns `(ct, beta)`: `ct` `[n, n]` the transposed conditional
    /// matrix (`ct[j][i] = p_{j|i}`, columns summing to 1, zero diagonal) and `beta` `[n]`.
    /// Returns `Err` for a non-square or u32 input, `n < 2`, or a perplexity that is not
    /// positive and finite.
    pub fn tsne_conditional(
        &self,
        perplexity: f32,
        steps: u32,
        tol: f32,
    ) -> Result<(DeviceTensor, DeviceTensor)> {
        let op = "tsne_conditional";
        let n = square(op, self)?;
        if n < 2 || !(perplexity.is_finite() && perplexity > 0.0) {
            return Err(Error::invalid(
                op,
                format!("need n >= 2 and a positive perplexity, got {perplexity}"),
                self.shape(),
            ));
        }
        let dev = self.device();
        let ct = DeviceTensor::uninit_for(op, dev, &[n, n], DType::F32)?;
        let beta = DeviceTensor::uninit_for(op, dev, &[n], DType::F32)?;
        let target = (perplexity as f64).ln() as f32;
        dev.dispatch(
            &kernel("perplexity", 1, 2),
            &[self],
            &[&ct, &beta],
            &params(n, 0, steps, false, [target, tol, 0.0, 0.0]),
            grid_1d(n, WG)?,
        )?;
        Ok((ct, beta))
    }

    /// Joint probabilities of t-SNE from a conditional matrix `self` (`[n, n]`, or its
    /// transpose): `max((c + c^T) / sum(c + c^T), eps)` off the diagonal, 0 on it. Returns
    /// `Err` for a non-square or u32 input.
    pub fn tsne_joint(&self, eps: f32) -> Result<DeviceTensor> {
        let op = "tsne_joint";
        let n = square(op, self)?;
        let dev = self.device();
        let out = DeviceTensor::uninit_for(op, dev, &[n, n], DType::F32)?;
        if n == 0 {
            return Ok(out);
        }
        let total = self.sum_all()?.reshape(&[1])?;
        dev.dispatch(
            &kernel("symmetrize", 2, 1),
            &[self, &total],
            &[&out],
            &params(n, 0, 0, false, [0.0, 0.0, 0.0, eps]),
            grid_1d(n * n, WG)?,
        )?;
        Ok(out)
    }

    /// Per-row sums of the exact t-SNE gradient for the joint probabilities `self`
    /// (`[n, n]`, symmetric, column `i` read for row `i`, diagonal skipped) and the
    /// embedding `y` (`[n, k]`, `k <= 4`), with `P` multiplied by `exaggeration` and
    /// `num_ij = (1 + |y_i - y_j|^2 / dof)^(-(dof + 1) / 2)`. Returns `(a, b, stats)`:
    /// `a_i = sum_j x p_ij num_ij (y_i - y_j)`, `b_i = sum_j num_ij^2 (y_i - y_j)` (both
    /// `[n, k]`) and `stats` `[n, 4]` = (`sum_j num_ij`, `sum_j x p_ij (ln(x p_ij) -
    /// ln num_ij)` when `with_error` (else 0), `sum_j x p_ij`, 0). The gradient is then
    /// `2 (dof + 1) / dof (a - b / Z)` with `Z` the sum of column 0, and the KL divergence
    /// `sum(column 1) + sum(column 2) ln Z`. Returns `Err` on a dtype or shape mismatch or
    /// `k` outside `1..=4`.
    pub fn tsne_grad_terms(
        &self,
        y: &DeviceTensor,
        dof: f32,
        exaggeration: f32,
        with_error: bool,
    ) -> Result<(DeviceTensor, DeviceTensor, DeviceTensor)> {
        let op = "tsne_grad_terms";
        let n = square(op, self)?;
        y.expect_dtype(op, DType::F32)?;
        let k = if y.rank() == 2 && y.shape()[0] == n {
            y.shape()[1]
        } else {
            return Err(Error::shapes(op, self.shape(), y.shape()));
        };
        if k == 0 || k > TSNE_MAX_COMPONENTS {
            return Err(Error::invalid(
                op,
                format!("the embedding must have 1 to {TSNE_MAX_COMPONENTS} columns"),
                y.shape(),
            ));
        }
        let dev = self.device();
        let a = DeviceTensor::uninit_for(op, dev, &[n, k], DType::F32)?;
        let b = DeviceTensor::uninit_for(op, dev, &[n, k], DType::F32)?;
        let stats = DeviceTensor::uninit_for(op, dev, &[n, 4], DType::F32)?;
        if n == 0 {
            return Ok((a, b, stats));
        }
        dev.dispatch(
            &kernel("grad", 2, 3),
            &[self, y],
            &[&a, &b, &stats],
            &params(n, k, 0, with_error, [dof, exaggeration, 0.0, 0.0]),
            grid_1d(n, WG)?,
        )?;
        Ok((a, b, stats))
    }

    /// One step of t-SNE's gradient descent with momentum and gains, in place on the
    /// embedding `self` (`[n, k]`), the previous update `upd` and the gains `gains` (both
    /// `[n, k]`, distinct buffers), from the terms of [`DeviceTensor::tsne_grad_terms`]:
    /// `grad = coef (a - b / tot[0])`; gains `+ 0.2` where `upd * grad < 0`, `* 0.8`
    /// elsewhere, at least `min_gain`; `grad *= gains`; `upd = momentum upd - lr grad`;
    /// `self += upd`. Column 3 of `stats` (`[n, 4]`) receives each row's squared norm of the
    /// gain-scaled gradient. Returns `Err` on a dtype or shape mismatch.
    #[allow(clippy::too_many_arguments)]
    pub fn tsne_step(
        &self,
        upd: &DeviceTensor,
        gains: &DeviceTensor,
        a: &DeviceTensor,
        b: &DeviceTensor,
        tot: &DeviceTensor,
        stats: &DeviceTensor,
        step: TsneStep,
    ) -> Result<()> {
        let op = "tsne_step";
        self.expect_dtype(op, DType::F32)?;
        if self.rank() != 2 {
            return Err(Error::invalid(
                op,
                "expected an [n, k] embedding",
                self.shape(),
            ));
        }
        let (n, k) = (self.shape()[0], self.shape()[1]);
        for t in [upd, gains, a, b] {
            expect_matrix(op, t, n, k)?;
        }
        expect_matrix(op, stats, n, 4)?;
        tot.expect_dtype(op, DType::F32)?;
        if tot.numel() < 1 {
            return Err(Error::shapes(op, tot.shape(), &[4]));
        }
        if n * k == 0 {
            return Ok(());
        }
        self.device().dispatch(
            &kernel("update", 3, 4),
            &[a, b, tot],
            &[self, upd, gains, stats],
            &params(
                n,
                k,
                0,
                false,
                [step.coef, step.learning_rate, step.momentum, step.min_gain],
            ),
            grid_1d(n, WG)?,
        )
    }
}
