//! Batch norm as fused per-channel passes ([`DeviceTensor::channel_affine`]) with a backward
//! rule of two reductions and one pass, written in ops so that higher-order gradients work.
//!
//! Forward with batch statistics: the mean (one reduction), the variance of the centered
//! input (one fused center-and-square pass and a reduction), then `y = a[c] * x + d[c]` with
//! `a = w / sqrt(var + eps)` and `d = b - mean * a` (one pass). Backward: `s1 = sum(g)` and
//! `s2 = sum(g * x)` per channel, then `dx = alpha * g + beta * x + gamma` in one pass, with
//! `k = inv_std * (s2 - mean * s1) / M`, `alpha = a`, `beta = -a * k * inv_std`,
//! `gamma = a * (k * inv_std * mean - s1 / M)`; `dw = M * k` and `db = s1`. When the backward
//! itself is recorded (`create_graph`), the statistics are recomputed from the input with ops,
//! so that the second derivative sees their dependence on it.

use cinder_device::{DeviceTensor, Error, Result};

use crate::mode::{is_grad_enabled, no_grad};
use crate::tensor::{Tensor, needs_graph};

/// Every axis but the channel axis 1.
fn stat_axes(rank: usize) -> Vec<isize> {
    (0..rank as isize).filter(|&a| a != 1).collect()
}

/// Batch norm's affine map `y = a * x + d` from per-channel statistics: `a = w * inv_std`
/// (`inv_std` without a weight) and `d = b - mean * a` (`-mean * a` without a bias).
fn coefficients(
    mean: &Tensor,
    inv_std: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let a = match weight {
        Some(w) => w.mul(inv_std)?,
        None => inv_std.clone(),
    };
    let shift = mean.mul(&a)?.neg()?;
    let d = match bias {
        Some(b) => b.add(&shift)?,
        None => shift,
    };
    Ok((a, d))
}

impl Tensor {
    /// `scale[c] * self + shift[c]` (plus `zscale[c] * z` when `second` is given) along
    /// channel axis 1, one fused pass, differentiable in every operand. Errors as
    /// [`DeviceTensor::channel_affine`].
    pub(crate) fn channel_affine(
        &self,
        scale: &Tensor,
        shift: &Tensor,
        second: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let (sr, dr) = (scale.raw(), shift.raw());
        let zr = second.map(|(z, zs)| (z.raw(), zs.raw()));
        let y = self
            .raw()
            .channel_affine(&sr, &dr, zr.as_ref().map(|(z, zs)| (z, zs)), false)?;
        let mut inputs = vec![self, scale, shift];
        if let Some((z, zs)) = second {
            inputs.extend([z, zs]);
        }
        Ok(Tensor::from_op("channel_affine", y, &inputs, |c| {
            let g = c.grad;
            let axes = stat_axes(g.rank());
            let zero = || Tensor::zeros(&g.device(), &[g.shape()[1]]);
            let per_channel = |t: &Tensor| g.mul(t)?.sum_axes(&axes, false);
            let (x, a) = (c.input(0), c.input(1));
            let mut out = vec![
                x.requires_grad()
                    .then(|| g.channel_affine(a, &zero()?, None))
                    .transpose()?,
                a.requires_grad().then(|| per_channel(x)).transpose()?,
                c.input(2)
                    .requires_grad()
                    .then(|| g.sum_axes(&axes, false))
                    .transpose()?,
            ];
            if c.inputs.len() > 3 {
                let (z, zs) = (c.input(3), c.input(4));
                out.push(
                    z.requires_grad()
                        .then(|| g.channel_affine(zs, &zero()?, None))
                        .transpose()?,
                );
                out.push(zs.requires_grad().then(|| per_channel(z)).transpose()?);
            }
            Ok(out)
        }))
    }

    /// Batch normalization over channel axis 1 of `self` (`[N, C, ...]`, PyTorch's
    /// `F.batch_norm`). With `running = Some((mean, var))` (`[C]` each, eval mode) those
    /// statistics normalize and `None` is returned beside the output; with `None` (training)
    /// the batch's own mean and biased variance do, and are returned (`[C]`, without
    /// gradient) for the caller's running averages. `weight` and `bias` (`[C]`) scale and
    /// shift. Every elementwise step is one fused pass. Returns `Err` for rank below 2, `[C]`
    /// vectors of another length, or (training) a single value per channel.
    pub fn batch_norm(
        &self,
        running: Option<(&Tensor, &Tensor)>,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let op = "batch_norm";
        let s = self.shape();
        if s.len() < 2 {
            return Err(Error::invalid(op, "expects rank 2 or more (N, C, ...)", &s));
        }
        let ch = s[1];
        for v in [running.map(|r| r.0), running.map(|r| r.1), weight, bias]
            .into_iter()
            .flatten()
        {
            if v.shape() != [ch] {
                return Err(Error::shapes(op, &v.shape(), &[ch]));
            }
        }
        if let Some((rm, rv)) = running {
            // Eval: a per-channel affine map whose coefficients carry the gradients of the
            // weight and bias through [C]-sized ops.
            let inv = rv.add_scalar(eps)?.rsqrt()?;
            let (a, d) = coefficients(rm, &inv, weight, bias)?;
            return Ok((self.channel_affine(&a, &d, None)?, None));
        }
        let m = self.numel() / ch.max(1);
        if m < 2 {
            return Err(Error::invalid(
                op,
                "expected more than one value per channel when training",
                &s,
            ));
        }
        let axes = stat_axes(s.len());
        let inv_m = 1.0 / m as f32;
        // Statistics and coefficients without a graph: the rule below differentiates through
        // them itself.
        let (mean, var, inv, a, d) = no_grad(|| -> Result<_> {
            let mean = self.sum_axes(&axes, false)?.mul_scalar(inv_m)?;
            let ones = Tensor::full(&self.device(), &[ch], 1.0)?;
            let centered: DeviceTensor =
                self.raw()
                    .channel_affine(&ones.raw(), &mean.neg()?.raw(), None, true)?;
            let var = Tensor::from_raw(centered)
                .sum_axes(&axes, false)?
                .mul_scalar(inv_m)?;
            let inv = var.add_scalar(eps)?.rsqrt()?;
            let (a, d) = coefficients(&mean, &inv, weight, bias)?;
            Ok((mean, var, inv, a, d))
        })?;
        let y = self.raw().channel_affine(&a.raw(), &d.raw(), None, false)?;
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        if !needs_graph(&inputs) {
            return Ok((Tensor::from_raw(y), Some((mean, var))));
        }
        let (has_w, has_b) = (weight.is_some(), bias.is_some());
        let (saved_mean, saved_inv) = (mean.clone(), inv.clone());
        let y = Tensor::from_op(op, y, &inputs, move |c| {
            let (g, x) = (c.grad, c.input(0));
            let w = has_w.then(|| c.input(1));
            let b_needs = has_b && c.input(1 + has_w as usize).requires_grad();
            let axes = stat_axes(g.rank());
            // The statistics: saved, or recomputed with ops when this backward is recorded.
            let (mean, inv) = if is_grad_enabled() {
                let mean = x.sum_axes(&axes, false)?.mul_scalar(inv_m)?;
                let one = Tensor::full(&g.device(), &[g.shape()[1]], 1.0)?;
                let xc = x.channel_affine(&one, &mean.neg()?, None)?;
                let var = xc.mul(&xc)?.sum_axes(&axes, false)?.mul_scalar(inv_m)?;
                (mean, var.add_scalar(eps)?.rsqrt()?)
            } else {
                (saved_mean.clone(), saved_inv.clone())
            };
            let s1 = g.sum_axes(&axes, false)?;
            let s2 = g.mul(x)?.sum_axes(&axes, false)?;
            // sum(g * xhat) = inv * (s2 - mean * s1)
            let gx = inv.mul(&s2.sub(&mean.mul(&s1)?)?)?;
            let dx = if x.requires_grad() {
                let a = match w {
                    Some(w) => w.mul(&inv)?,
                    None => inv.clone(),
                };
                let k = gx.mul_scalar(inv_m)?;
                let beta = a.mul(&k)?.mul(&inv)?.neg()?;
                let gamma = a.mul(&k.mul(&inv)?.mul(&mean)?.sub(&s1.mul_scalar(inv_m)?)?)?;
                Some(g.channel_affine(&a, &gamma, Some((x, &beta)))?)
            } else {
                None
            };
            let mut out = vec![dx];
            if let Some(w) = w {
                out.push(w.requires_grad().then_some(gx));
            }
            if has_b {
                out.push(b_needs.then_some(s1));
            }
            Ok(out)
        });
        Ok((y, Some((mean, var))))
    }
}
