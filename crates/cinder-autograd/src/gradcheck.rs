//! [`gradcheck`]: backward rules against central finite differences, as
//! `torch.autograd.gradcheck`.

use cinder_device::{DeviceTensor, Error, Result};

use crate::engine::grad;
use crate::tensor::Tensor;

/// Step and tolerances of [`gradcheck`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradcheckOptions {
    /// Finite-difference step (inputs are f32, so much below 1e-3 loses to rounding).
    pub eps: f32,
    /// Absolute tolerance.
    pub atol: f32,
    /// Relative tolerance (of the numerical derivative's magnitude).
    pub rtol: f32,
    /// Seed of the random projection of the output.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-2,
            atol: 2e-3,
            rtol: 1e-2,
            seed: 0,
        }
    }
}

/// SplitMix64, enough for a reproducible projection without a dependency.
fn projection(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Checks the gradients of `f` at `inputs` (f32 tensors; their values are read, the
/// tensors themselves are not used) against central finite differences.
///
/// The output `y = f(x)` (any shape) is projected on a fixed random tensor `w`, so one
/// backward pass checks the whole vector-Jacobian product: the analytical gradient of
/// `sum(y * w)` with respect to every input element is compared with
/// `(L(x + eps) - L(x - eps)) / 2 eps`, the projection summed on the host in f64. `f` may
/// itself call [`crate::grad`] with `create_graph` (that is how second-order gradients are
/// checked): it always runs with grad mode on and inputs that require grad.
///
/// Returns `Ok(())` when every element satisfies `|analytic - numeric| <= atol + rtol *
/// |numeric|`, else [`Error::InvalidArgument`] naming the number of failures and the worst
/// one (input, element, both values); and any error `f` returns.
pub fn gradcheck<F>(inputs: &[Tensor], f: F, opts: &GradcheckOptions) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let Some(first) = inputs.first() else {
        return Err(Error::invalid("gradcheck", "no inputs", &[]));
    };
    let dev = first.device();
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape()).collect();
    let mut host: Vec<Vec<f32>> = inputs
        .iter()
        .map(|t| t.to_vec::<f32>())
        .collect::<Result<_>>()?;
    let make = |vals: &[Vec<f32>]| -> Result<Vec<Tensor>> {
        vals.iter()
            .zip(&shapes)
            .map(|(v, s)| Tensor::parameter(DeviceTensor::from_slice(&dev, v, s)?))
            .collect()
    };

    let leaves = make(&host)?;
    let y = f(&leaves)?;
    let w = projection(opts.seed, y.numel());
    let wt = Tensor::from_slice(&dev, &w, &y.shape())?;
    let loss = y.mul(&wt)?.sum_all()?;
    let refs: Vec<&Tensor> = leaves.iter().collect();
    let analytic: Vec<Vec<f32>> = grad(&[&loss], &refs, false)?
        .iter()
        .map(|g| g.to_vec::<f32>())
        .collect::<Result<_>>()?;

    let eval = |vals: &[Vec<f32>]| -> Result<f64> {
        let y = f(&make(vals)?)?.to_vec::<f32>()?;
        Ok(y.iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum())
    };

    let mut failures = 0usize;
    let mut worst: Option<(f64, usize, usize, f32, f64)> = None;
    for i in 0..host.len() {
        for j in 0..host[i].len() {
            let x0 = host[i][j];
            let (xp, xm) = (x0 + opts.eps, x0 - opts.eps);
            host[i][j] = xp;
            let lp = eval(&host)?;
            host[i][j] = xm;
            let lm = eval(&host)?;
            host[i][j] = x0;
            let numeric = (lp - lm) / (xp as f64 - xm as f64);
            let a = analytic[i][j];
            let err = (a as f64 - numeric).abs();
            let allowed = opts.atol as f64 + opts.rtol as f64 * numeric.abs();
            if err.is_nan() || err > allowed {
                failures += 1;
                let excess = err / allowed;
                if worst.is_none_or(|w| excess > w.0) {
                    worst = Some((excess, i, j, a, numeric));
                }
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((_, i, j, a, n)) => Err(Error::invalid(
            "gradcheck",
            format!(
                "{failures} elements disagree; worst: input {i} element {j}: analytic {a}, \
                 numeric {n:.6}"
            ),
            &shapes[i],
        )),
    }
}
