//! Reductions and their backward rules: the output gradient is broadcast back over the
//! reduced axes (scaled for mean, masked for max/min, weighted by softmax for logsumexp).

use cinder_device::Result;
use cinder_device::shape::normalize_axis;

use crate::tensor::{Ctx, Tensor};

/// `shape` with `axes` set to 1 (the keepdim shape of a reduction).
fn keep_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    for &a in axes {
        s[a] = 1;
    }
    s
}

/// The output gradient reshaped to the keepdim shape of a reduction over `axes`.
fn grad_kept(c: &Ctx, axes: &[usize]) -> Result<Tensor> {
    c.grad.reshape(&keep_shape(&c.input(0).shape(), axes))
}

/// The output reshaped to the keepdim shape (for max/min/logsumexp rules).
fn out_kept(c: &Ctx, axes: &[usize]) -> Result<Tensor> {
    c.output.reshape(&keep_shape(&c.input(0).shape(), axes))
}

/// Spreads the gradient of a max/min over the elements equal to the result, split evenly
/// among ties, as PyTorch: along an axis (`amax`) a NaN result matches nothing, so its
/// slice's gradient is NaN; over the whole tensor (`max()`) a NaN result is shared by the
/// NaN elements.
fn extremum_backward(c: &Ctx, axes: &[usize]) -> Result<Tensor> {
    let x = c.input(0).raw();
    let y = out_kept(c, axes)?.raw();
    let whole = axes.len() == x.rank();
    let mut hit = x.eq(&y)?;
    if whole {
        hit = hit.add(&x.isnan()?.mul(&y.isnan()?)?)?;
    }
    let count = if whole {
        hit.sum_all()?
    } else {
        let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        hit.sum_axes(&ax, true)?
    };
    let mask = Tensor::from_raw(hit.div(&count)?);
    grad_kept(c, axes)?.mul(&mask)
}

fn all_axes(rank: usize) -> Vec<usize> {
    (0..rank).collect()
}

#[derive(Clone, Copy)]
enum Red {
    Sum,
    Mean,
    Max,
    Min,
    LogSumExp,
    Var(bool),
}

/// The backward rule of reduction `r` over `axes` of input 0.
fn reduce_backward(r: Red, c: &Ctx, axes: &[usize]) -> Result<Tensor> {
    let x = c.input(0);
    let shape = x.shape();
    let n: usize = axes.iter().map(|&a| shape[a]).product();
    Ok(match r {
        Red::Sum => grad_kept(c, axes)?.broadcast_to(&shape)?,
        Red::Mean => grad_kept(c, axes)?
            .mul_scalar(1.0 / n as f32)?
            .broadcast_to(&shape)?,
        Red::Max | Red::Min => extremum_backward(c, axes)?,
        // d logsumexp / dx = exp(x - lse)
        Red::LogSumExp => grad_kept(c, axes)?.mul(&x.sub(&out_kept(c, axes)?)?.exp()?)?,
        // d var / dx = 2 (x - mean) / (n - unbiased)
        Red::Var(unbiased) => {
            let denom = if unbiased { n as f32 - 1.0 } else { n as f32 };
            let mean = if axes.len() == shape.len() {
                x.mean_all()?
            } else {
                x.mean_axis(axes[0] as isize, true)?
            };
            grad_kept(c, axes)?
                .mul(&x.sub(&mean)?)?
                .mul_scalar(2.0 / denom)?
        }
    })
}

impl Tensor {
    fn reduce_axis_op(
        &self,
        op: &'static str,
        r: Red,
        axis: isize,
        f: impl FnOnce(&cinder_device::DeviceTensor) -> Result<cinder_device::DeviceTensor>,
    ) -> Result<Tensor> {
        let d = self.raw();
        let y = f(&d)?;
        let ax = normalize_axis(op, axis, d.shape())?;
        Ok(Tensor::from_op(op, y, &[self], move |c| {
            Ok(vec![Some(reduce_backward(r, c, &[ax])?)])
        }))
    }

    fn reduce_all_op(
        &self,
        op: &'static str,
        r: Red,
        f: impl FnOnce(&cinder_device::DeviceTensor) -> Result<cinder_device::DeviceTensor>,
    ) -> Result<Tensor> {
        let y = f(&self.raw())?;
        Ok(Tensor::from_op(op, y, &[self], move |c| {
            let axes = all_axes(c.input(0).rank());
            Ok(vec![Some(reduce_backward(r, c, &axes)?)])
        }))
    }

    /// Sum along `axis`. Errors as [`cinder_device::DeviceTensor::sum_axis`].
    pub fn sum_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce_axis_op("sum_axis", Red::Sum, axis, |d| d.sum_axis(axis, keepdim))
    }
    /// Mean along `axis`. Errors as [`cinder_device::DeviceTensor::mean_axis`].
    pub fn mean_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce_axis_op("mean_axis", Red::Mean, axis, |d| d.mean_axis(axis, keepdim))
    }
    /// Max along `axis`, PyTorch's `amax`: NaN where the slice holds one, the gradient split
    /// evenly among ties. Errors as [`cinder_device::DeviceTensor::amax_axis`].
    pub fn amax_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce_axis_op("amax_axis", Red::Max, axis, |d| d.amax_axis(axis, keepdim))
    }
    /// Min along `axis`, PyTorch's `amin` (gradient split among ties). Errors as
    /// [`cinder_device::DeviceTensor::amin_axis`].
    pub fn amin_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce_axis_op("amin_axis", Red::Min, axis, |d| d.amin_axis(axis, keepdim))
    }
    /// PyTorch's `torch.max(x, dim)`: the values and the u32 indices (the first on ties, the
    /// first NaN when there is one) of the maxima along `axis`; the whole gradient goes to
    /// the returned index. Errors as [`cinder_device::DeviceTensor::max_axis`].
    pub fn max_axis(&self, axis: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        let (_, idx) = self.raw().max_axis(axis, true)?;
        self.take_at(axis, idx, keepdim)
    }
    /// PyTorch's `torch.min(x, dim)`: values and indices of the minima along `axis`, the
    /// gradient to the returned index. Errors as [`cinder_device::DeviceTensor::min_axis`].
    pub fn min_axis(&self, axis: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        let (_, idx) = self.raw().min_axis(axis, true)?;
        self.take_at(axis, idx, keepdim)
    }

    /// The elements at the keepdim indices `idx` along `axis` (a differentiable gather) and
    /// the indices, both reshaped as the reduction's output.
    fn take_at(
        &self,
        axis: isize,
        idx: cinder_device::DeviceTensor,
        keepdim: bool,
    ) -> Result<(Tensor, Tensor)> {
        let shape = self.shape();
        let a = normalize_axis("max_axis", axis, &shape)?;
        let mut out = shape.clone();
        if keepdim {
            out[a] = 1;
        } else {
            out.remove(a);
        }
        let idx = Tensor::from_raw(idx);
        let values = self.gather(a as isize, &idx)?.reshape(&out)?;
        Ok((values, idx.reshape(&out)?))
    }
    /// Stable `log(sum(exp(x)))` along `axis`. Errors as
    /// [`cinder_device::DeviceTensor::logsumexp_axis`].
    pub fn logsumexp_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce_axis_op("logsumexp_axis", Red::LogSumExp, axis, |d| {
            d.logsumexp_axis(axis, keepdim)
        })
    }
    /// Variance along `axis` (`unbiased` divides by n - 1). Errors as
    /// [`cinder_device::DeviceTensor::var_axis`].
    pub fn var_axis(&self, axis: isize, unbiased: bool, keepdim: bool) -> Result<Tensor> {
        self.reduce_axis_op("var_axis", Red::Var(unbiased), axis, |d| {
            d.var_axis(axis, unbiased, keepdim)
        })
    }
    /// Index of the max along `axis`, u32, no grad. Errors as
    /// [`cinder_device::DeviceTensor::argmax_axis`].
    pub fn argmax_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        Ok(Tensor::from_raw(self.raw().argmax_axis(axis, keepdim)?))
    }
    /// Index of the min along `axis`, u32, no grad. Errors as
    /// [`cinder_device::DeviceTensor::argmin_axis`].
    pub fn argmin_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        Ok(Tensor::from_raw(self.raw().argmin_axis(axis, keepdim)?))
    }

    /// Sum of every element (shape `[]`). Errors as
    /// [`cinder_device::DeviceTensor::sum_all`].
    pub fn sum_all(&self) -> Result<Tensor> {
        self.reduce_all_op("sum_all", Red::Sum, |d| d.sum_all())
    }
    /// Mean of every element (shape `[]`). Errors as
    /// [`cinder_device::DeviceTensor::mean_all`].
    pub fn mean_all(&self) -> Result<Tensor> {
        self.reduce_all_op("mean_all", Red::Mean, |d| d.mean_all())
    }
    /// Largest element (shape `[]`, NaN when there is one; the gradient split among ties,
    /// and among the NaNs when the result is NaN, as PyTorch's `x.max()`). Errors as
    /// [`cinder_device::DeviceTensor::max_all`].
    pub fn max_all(&self) -> Result<Tensor> {
        self.reduce_all_op("max_all", Red::Max, |d| d.max_all())
    }
    /// Smallest element (shape `[]`, gradient split among ties). Errors as
    /// [`cinder_device::DeviceTensor::min_all`].
    pub fn min_all(&self) -> Result<Tensor> {
        self.reduce_all_op("min_all", Red::Min, |d| d.min_all())
    }
    /// Stable logsumexp of every element (shape `[]`). Errors as
    /// [`cinder_device::DeviceTensor::logsumexp_all`].
    pub fn logsumexp_all(&self) -> Result<Tensor> {
        self.reduce_all_op("logsumexp_all", Red::LogSumExp, |d| d.logsumexp_all())
    }
    /// Variance of every element (shape `[]`). Errors as
    /// [`cinder_device::DeviceTensor::var_all`].
    pub fn var_all(&self, unbiased: bool) -> Result<Tensor> {
        self.reduce_all_op("var_all", Red::Var(unbiased), |d| d.var_all(unbiased))
    }
    /// Flat index of the largest element, u32, no grad. Returns `Err` for an empty or
    /// `u32` tensor.
    pub fn argmax_all(&self) -> Result<Tensor> {
        Ok(Tensor::from_raw(self.raw().argmax_all()?))
    }
    /// Flat index of the smallest element, u32, no grad. Returns `Err` for an empty or
    /// `u32` tensor.
    pub fn argmin_all(&self) -> Result<Tensor> {
        Ok(Tensor::from_raw(self.raw().argmin_all()?))
    }

    /// Sum over several axes. Errors as [`cinder_device::DeviceTensor::sum_axes`].
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let d = self.raw();
        let y = d.sum_axes(axes, keepdim)?;
        let ax = axes
            .iter()
            .map(|&a| normalize_axis("sum_axes", a, d.shape()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::from_op("sum_axes", y, &[self], move |c| {
            Ok(vec![Some(reduce_backward(Red::Sum, c, &ax)?)])
        }))
    }

    /// Sums down to `shape`, undoing a broadcast; backward broadcasts back. Errors as
    /// [`cinder_device::DeviceTensor::sum_to_shape`].
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        let d = self.raw();
        if d.shape() == shape {
            return Ok(self.clone());
        }
        let y = d.sum_to_shape(shape)?;
        Ok(Tensor::from_op("sum_to_shape", y, &[self], |c| {
            Ok(vec![Some(c.grad.broadcast_to(&c.input(0).shape())?)])
        }))
    }
}
