//! Max and average pooling, and their adaptive forms, with their backward rules. Every
//! backward kernel is linear in the gradient and is an op with a rule of its own (a gather at
//! the recorded maxima, or the average pooling itself), so pooling has higher-order
//! gradients.

use cinder_device::ops::pool::Pool2dParams;
use cinder_device::{DeviceTensor, Result};

use crate::tensor::Tensor;

impl Tensor {
    /// Max pooling of `[N, C, H, W]`: the pooled values and, as a u32 tensor without grad,
    /// the index of each maximum within its input plane. Errors as
    /// [`DeviceTensor::max_pool2d`].
    pub fn max_pool2d(&self, p: &Pool2dParams) -> Result<(Tensor, Tensor)> {
        let p = *p;
        let (y, idx) = self.raw().max_pool2d(&p)?;
        let idx_t = Tensor::from_raw(idx.clone());
        let y = Tensor::from_op("max_pool2d", y, &[self], move |c| {
            let shape = c.input(0).shape();
            Ok(vec![Some(Tensor::max_pool2d_backward(
                c.grad,
                &Tensor::from_raw(idx.clone()),
                &shape,
                &p,
            )?)])
        });
        Ok((y, idx_t))
    }

    /// Backward of [`Tensor::max_pool2d`] as an op: routes `grad_out` to the recorded
    /// maxima (differentiable in `grad_out`). Errors as [`DeviceTensor::max_pool2d_backward`].
    pub(crate) fn max_pool2d_backward(
        grad_out: &Tensor,
        indices: &Tensor,
        input_shape: &[usize],
        p: &Pool2dParams,
    ) -> Result<Tensor> {
        let idx = indices.raw();
        let y = DeviceTensor::max_pool2d_backward(&grad_out.raw(), &idx, input_shape, p)?;
        Ok(Tensor::from_op(
            "max_pool2d_backward",
            y,
            &[grad_out],
            // Adjoint of scattering to the maxima: gather each plane at the indices.
            move |c| {
                Ok(vec![Some(gather_planes(
                    c.grad,
                    &idx,
                    &c.input(0).shape(),
                )?)])
            },
        ))
    }

    /// Average pooling of `[N, C, H, W]`, with PyTorch's `count_include_pad` and
    /// `divisor_override`. Errors as [`DeviceTensor::avg_pool2d`].
    pub fn avg_pool2d(
        &self,
        p: &Pool2dParams,
        count_include_pad: bool,
        divisor_override: Option<usize>,
    ) -> Result<Tensor> {
        let p = *p;
        let y = self
            .raw()
            .avg_pool2d(&p, count_include_pad, divisor_override)?;
        Ok(Tensor::from_op("avg_pool2d", y, &[self], move |c| {
            let shape = c.input(0).shape();
            Ok(vec![Some(Tensor::avg_pool2d_backward(
                c.grad,
                &shape,
                &p,
                count_include_pad,
                divisor_override,
            )?)])
        }))
    }

    /// Backward of [`Tensor::avg_pool2d`] as an op (its own adjoint is average pooling).
    /// Errors as [`DeviceTensor::avg_pool2d_backward`].
    pub(crate) fn avg_pool2d_backward(
        grad_out: &Tensor,
        input_shape: &[usize],
        p: &Pool2dParams,
        count_include_pad: bool,
        divisor_override: Option<usize>,
    ) -> Result<Tensor> {
        let p = *p;
        let y = DeviceTensor::avg_pool2d_backward(
            &grad_out.raw(),
            input_shape,
            &p,
            count_include_pad,
            divisor_override,
        )?;
        Ok(Tensor::from_op(
            "avg_pool2d_backward",
            y,
            &[grad_out],
            move |c| {
                Ok(vec![Some(c.grad.avg_pool2d(
                    &p,
                    count_include_pad,
                    divisor_override,
                )?)])
            },
        ))
    }

    /// Adaptive average pooling of `[N, C, H, W]` to `output` = `(OH, OW)` with PyTorch's
    /// windows (any output size, larger than the input included). Errors as
    /// [`DeviceTensor::adaptive_avg_pool2d`].
    pub fn adaptive_avg_pool2d(&self, output: (usize, usize)) -> Result<Tensor> {
        let y = self.raw().adaptive_avg_pool2d(output)?;
        Ok(Tensor::from_op("adaptive_avg_pool2d", y, &[self], |c| {
            let shape = c.input(0).shape();
            Ok(vec![Some(Tensor::adaptive_avg_pool2d_backward(
                c.grad, &shape,
            )?)])
        }))
    }

    /// Backward of [`Tensor::adaptive_avg_pool2d`] as an op (its adjoint is the adaptive
    /// average pooling itself). Errors as [`DeviceTensor::adaptive_avg_pool2d_backward`].
    pub(crate) fn adaptive_avg_pool2d_backward(
        grad_out: &Tensor,
        input_shape: &[usize],
    ) -> Result<Tensor> {
        let y = DeviceTensor::adaptive_avg_pool2d_backward(&grad_out.raw(), input_shape)?;
        Ok(Tensor::from_op(
            "adaptive_avg_pool2d_backward",
            y,
            &[grad_out],
            |c| {
                let gs = c.input(0).shape();
                Ok(vec![Some(c.grad.adaptive_avg_pool2d((gs[2], gs[3]))?)])
            },
        ))
    }

    /// Adaptive max pooling of `[N, C, H, W]` to `output`: the maxima and, as a u32 tensor
    /// without grad, their indices within the input plane (PyTorch's `return_indices`).
    /// Errors as [`DeviceTensor::adaptive_max_pool2d`].
    pub fn adaptive_max_pool2d(&self, output: (usize, usize)) -> Result<(Tensor, Tensor)> {
        let (y, idx) = self.raw().adaptive_max_pool2d(output)?;
        let idx_t = Tensor::from_raw(idx.clone());
        let y = Tensor::from_op("adaptive_max_pool2d", y, &[self], move |c| {
            let shape = c.input(0).shape();
            Ok(vec![Some(Tensor::adaptive_max_pool2d_backward(
                c.grad,
                &Tensor::from_raw(idx.clone()),
                &shape,
            )?)])
        });
        Ok((y, idx_t))
    }

    /// Backward of [`Tensor::adaptive_max_pool2d`] as an op: routes `grad_out` to the
    /// recorded maxima (differentiable in `grad_out`). Errors as
    /// [`DeviceTensor::adaptive_max_pool2d_backward`].
    pub(crate) fn adaptive_max_pool2d_backward(
        grad_out: &Tensor,
        indices: &Tensor,
        input_shape: &[usize],
    ) -> Result<Tensor> {
        let idx = indices.raw();
        let y = DeviceTensor::adaptive_max_pool2d_backward(&grad_out.raw(), &idx, input_shape)?;
        Ok(Tensor::from_op(
            "adaptive_max_pool2d_backward",
            y,
            &[grad_out],
            move |c| {
                Ok(vec![Some(gather_planes(
                    c.grad,
                    &idx,
                    &c.input(0).shape(),
                )?)])
            },
        ))
    }
}

/// The adjoint of routing a pooled gradient `[N, C, OH, OW]` (shape `gs`) to the input
/// plane cells `idx`: each plane of `grad` (`[N, C, H, W]`) read at the indices. Indices
/// outside the plane ([`cinder_device::ops::pool::NO_INDEX`]) read 0.
fn gather_planes(grad: &Tensor, idx: &DeviceTensor, gs: &[usize]) -> Result<Tensor> {
    let xs = grad.shape();
    let (n, ch) = (gs[0], gs[1]);
    let planes = grad.reshape(&[n, ch, xs[2] * xs[3]])?;
    let at = Tensor::from_raw(idx.reshape(&[n, ch, gs[2] * gs[3]])?);
    planes.gather(2, &at)?.reshape(gs)
}
