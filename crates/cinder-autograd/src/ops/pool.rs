//! Max and average pooling with their backward rules. Both backward kernels are linear in
//! the gradient, and are ops with rules of their own (a gather at the recorded maxima, and
//! average pooling itself), so pooling has higher-order gradients.

use cinder_device::ops::pool::Pool2dParams;
use cinder_device::{DeviceTensor, Result};

use crate::tensor::Tensor;

impl Tensor {
    /// Max pooling of `[N, C, H, W]`: the pooled values and, as a u32 tensor without grad,
    /// the index of each maximum within its input plane. Errors as
    /// [`DeviceTensor::max_pool2d`].
    pub fn max_pool2d(&self, p: &Pool2dParams) -> Result<(Tensor, Tensor)> {
        let p = *p;
        let (y, idx) = self.data().max_pool2d(&p)?;
        let idx_t = Tensor::from_data(idx.clone());
        let y = Tensor::from_op("max_pool2d", y, &[self], move |c| {
            let shape = c.input(0).shape();
            Ok(vec![Some(Tensor::max_pool2d_backward(
                c.grad,
                &Tensor::from_data(idx.clone()),
                &shape,
                &p,
            )?)])
        });
        Ok((y, idx_t))
    }

    /// Backward of [`Tensor::max_pool2d`] as an op: routes `grad_out` to the recorded
    /// maxima (differentiable in `grad_out`). Errors as [`DeviceTensor::max_pool2d_backward`].
    pub fn max_pool2d_backward(
        grad_out: &Tensor,
        indices: &Tensor,
        input_shape: &[usize],
        p: &Pool2dParams,
    ) -> Result<Tensor> {
        let idx = indices.data();
        let y = DeviceTensor::max_pool2d_backward(&grad_out.data(), &idx, input_shape, p)?;
        Ok(Tensor::from_op(
            "max_pool2d_backward",
            y,
            &[grad_out],
            move |c| {
                // Adjoint of scattering to the maxima: gather each plane at the indices.
                let gs = c.input(0).shape();
                let xs = c.output.shape();
                let (n, ch) = (gs[0], gs[1]);
                let planes = c.grad.reshape(&[n, ch, xs[2] * xs[3]])?;
                let at = Tensor::from_data(idx.reshape(&[n, ch, gs[2] * gs[3]])?);
                Ok(vec![Some(planes.gather(2, &at)?.reshape(&gs)?)])
            },
        ))
    }

    /// Average pooling of `[N, C, H, W]`. Errors as [`DeviceTensor::avg_pool2d`].
    pub fn avg_pool2d(&self, p: &Pool2dParams, count_include_pad: bool) -> Result<Tensor> {
        let p = *p;
        let y = self.data().avg_pool2d(&p, count_include_pad)?;
        Ok(Tensor::from_op("avg_pool2d", y, &[self], move |c| {
            let shape = c.input(0).shape();
            Ok(vec![Some(Tensor::avg_pool2d_backward(
                c.grad,
                &shape,
                &p,
                count_include_pad,
            )?)])
        }))
    }

    /// Backward of [`Tensor::avg_pool2d`] as an op (its own adjoint is average pooling).
    /// Errors as [`DeviceTensor::avg_pool2d_backward`].
    pub fn avg_pool2d_backward(
        grad_out: &Tensor,
        input_shape: &[usize],
        p: &Pool2dParams,
        count_include_pad: bool,
    ) -> Result<Tensor> {
        let p = *p;
        let y = DeviceTensor::avg_pool2d_backward(
            &grad_out.data(),
            input_shape,
            &p,
            count_include_pad,
        )?;
        Ok(Tensor::from_op(
            "avg_pool2d_backward",
            y,
            &[grad_out],
            move |c| Ok(vec![Some(c.grad.avg_pool2d(&p, count_include_pad)?)]),
        ))
    }
}
