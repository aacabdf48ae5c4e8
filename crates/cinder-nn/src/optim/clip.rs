//! Gradient clipping (`torch.nn.utils.clip_grad_norm_`, `clip_grad_value_`).

use cinder_autograd::Tensor;
use cinder_device::{DType, Device, DeviceTensor, Error, Result};

use super::base::check_nonneg;

/// [`clip_grad_norm_with`] with PyTorch's defaults: the L2 norm, no error for a
/// non-finite norm. Errors as [`clip_grad_norm_with`].
pub fn clip_grad_norm(params: &[Tensor], max_norm: f32) -> Result<Tensor> {
    clip_grad_norm_with(params, max_norm, 2.0, false)
}

/// PyTorch's `clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)`: the total
/// norm of order `norm_type` over every gradient together (as if concatenated:
/// `(sum of |g|^p)^(1/p)`, or the largest `|g|` for `p = f32::INFINITY`), then every
/// gradient multiplied by `clip_coef = min(max_norm / (total + 1e-6), 1)`. Returns the
/// total norm (before clipping) as a shape-`[]` tensor.
///
/// Without `error_if_nonfinite` nothing is read back. A NaN in a gradient makes the norm
/// and the coefficient NaN, so every gradient becomes NaN; an infinite norm gives a
/// coefficient of 0, so finite gradient values become 0 and infinite ones NaN (all as
/// PyTorch). With `error_if_nonfinite` the norm is read back (one wait for the GPU) and a
/// NaN or infinite norm is an `Err`, the gradients left unchanged (PyTorch raises).
///
/// Parameters without a gradient are skipped; with no gradient at all the norm is 0 and
/// nothing changes. The gradients are replaced by new tensors (`set_grad`), so a buffer
/// shared by two gradients is not scaled twice. Dispatches per gradient: 2 to 4 (the
/// power, a sum, for `p = inf` a maximum and a NaN probe) plus one to add it up; then one
/// for the coefficient and one scale per gradient.
///
/// Returns `Err` when `max_norm` is negative or not finite, `norm_type` is not positive
/// (PyTorch also accepts 0, negative orders and `-inf`, which are not norms), or a
/// gradient is not `f32`; nothing is changed then.
pub fn clip_grad_norm_with(
    params: &[Tensor],
    max_norm: f32,
    norm_type: f32,
    error_if_nonfinite: bool,
) -> Result<Tensor> {
    let op = "clip_grad_norm";
    check_nonneg(op, &[("max_norm", max_norm)])?;
    if norm_type.is_nan() || norm_type <= 0.0 {
        return Err(Error::invalid(
            op,
            format!("norm_type {norm_type} must be > 0 or inf"),
            &[],
        ));
    }
    let inf = norm_type == f32::INFINITY;
    let grads: Vec<(usize, DeviceTensor)> = params
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.grad().map(|g| (i, g.raw())))
        .collect();
    for (_, g) in &grads {
        g.expect_dtype(op, DType::F32)?;
    }
    let mut acc: Option<DeviceTensor> = None;
    let fold = |a: Option<DeviceTensor>, x: DeviceTensor, max: bool| -> Result<DeviceTensor> {
        match a {
            None => Ok(x),
            Some(a) if max => a.maximum(&x),
            Some(a) => a.add(&x),
        }
    };
    for (_, g) in &grads {
        if g.numel() == 0 {
            continue;
        }
        let a = g.abs()?;
        let part = if inf {
            a.max_all()?
        } else if norm_type == 1.0 {
            a.sum_all()?
        } else if norm_type == 2.0 {
            g.square()?.sum_all()?
        } else {
            a.powf(norm_type)?.sum_all()?
        };
        acc = Some(fold(acc.take(), part.reshape(&[])?, inf)?);
    }
    let Some(acc) = acc else {
        let device = match params.first() {
            Some(p) => p.device(),
            None => Device::default()?,
        };
        return Ok(Tensor::from_raw(DeviceTensor::zeros(&device, &[])?));
    };
    let (norm, coef) = DeviceTensor::clip_norm_coef(&acc, norm_type, max_norm)?;
    if error_if_nonfinite {
        let v = norm.to_scalar()?;
        if !v.is_finite() {
            return Err(Error::invalid(
                op,
                format!(
                    "the total norm of order {norm_type} of the gradients is {v}, so they \
                     cannot be clipped (error_if_nonfinite)"
                ),
                &[],
            ));
        }
    }
    for (i, g) in grads {
        let scaled = g.mul(&coef)?;
        params[i].set_grad(Some(Tensor::from_raw(scaled)));
    }
    Ok(Tensor::from_raw(norm))
}

/// Clamps every gradient elementwise to `[-clip, clip]` (PyTorch's `clip_grad_value_`):
/// NaN stays NaN, infinities become `-clip` / `clip`. One dispatch per gradient, nothing
/// read back; parameters without a gradient are skipped. The gradients are replaced by
/// new tensors.
/// Returns `Err` when `clip` is negative or not finite, or a gradient is not `f32`.
pub fn clip_grad_value(params: &[Tensor], clip: f32) -> Result<()> {
    let op = "clip_grad_value";
    check_nonneg(op, &[("clip", clip)])?;
    let mut clipped = Vec::new();
    for (i, p) in params.iter().enumerate() {
        if let Some(g) = p.grad() {
            let g = g.raw();
            g.expect_dtype(op, DType::F32)?;
            clipped.push((i, g.clamp(-clip, clip)?));
        }
    }
    for (i, g) in clipped {
        params[i].set_grad(Some(Tensor::from_raw(g)));
    }
    Ok(())
}
