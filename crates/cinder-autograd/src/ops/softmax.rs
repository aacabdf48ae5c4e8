//! Softmax and log-softmax with their backward rules. The backward helpers are ops too (one
//! fused kernel each), with rules of their own, so softmax has higher-order gradients.

use cinder_device::Result;

use crate::tensor::Tensor;

impl Tensor {
    /// Softmax along `axis`. Errors as [`cinder_device::DeviceTensor::softmax`].
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        let y = self.raw().softmax(axis)?;
        Ok(Tensor::from_op("softmax", y, &[self], move |c| {
            Ok(vec![Some(c.grad.softmax_backward(c.output, axis)?)])
        }))
    }

    /// Log-softmax along `axis` (stable form). Errors as
    /// [`cinder_device::DeviceTensor::log_softmax`].
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        let y = self.raw().log_softmax(axis)?;
        Ok(Tensor::from_op("log_softmax", y, &[self], move |c| {
            Ok(vec![Some(c.grad.log_softmax_backward(c.output, axis)?)])
        }))
    }

    /// Softmax backward `y * (g - sum(g * y))` with `self` = g and `y` the softmax output.
    /// Differentiable in both. Errors as [`cinder_device::DeviceTensor::softmax_backward`].
    pub(crate) fn softmax_backward(&self, y: &Tensor, axis: isize) -> Result<Tensor> {
        let out = self.raw().softmax_backward(&y.raw(), axis)?;
        Ok(Tensor::from_op(
            "softmax_backward",
            out,
            &[self, y],
            move |c| {
                let (gg, g, y) = (c.grad, c.input(0), c.input(1));
                // The Jacobian diag(y) - y y^T is symmetric: d/dg is the same map applied to gg.
                let dg = gg.softmax_backward(y, axis)?;
                // d/dy = gg * (g - s) - g * sum(gg * y), with s = sum(g * y)
                let s = g.mul(y)?.sum_axis(axis, true)?;
                let t = gg.mul(y)?.sum_axis(axis, true)?;
                let dy = gg.mul(&g.sub(&s)?)?.sub(&g.mul(&t)?)?;
                Ok(vec![Some(dg), Some(dy)])
            },
        ))
    }

    /// Log-softmax backward `g - exp(y) * sum(g)` with `self` = g and `y` the log-softmax
    /// output. Differentiable in both. Errors as
    /// [`cinder_device::DeviceTensor::log_softmax_backward`].
    pub(crate) fn log_softmax_backward(&self, y: &Tensor, axis: isize) -> Result<Tensor> {
        let out = self.raw().log_softmax_backward(&y.raw(), axis)?;
        Ok(Tensor::from_op(
            "log_softmax_backward",
            out,
            &[self, y],
            move |c| {
                let (gg, g, y) = (c.grad, c.input(0), c.input(1));
                let p = y.exp()?;
                // d/dg = gg - sum(gg * p);  d/dy = -gg * p * sum(g)
                let dg = gg.sub(&gg.mul(&p)?.sum_axis(axis, true)?)?;
                let dy = gg.mul(&p)?.mul(&g.sum_axis(axis, true)?)?.neg()?;
                Ok(vec![Some(dg), Some(dy)])
            },
        ))
    }
}

impl Tensor {
    /// Attention's `softmax(scale * self + mask, -1)` in one kernel, with the mask read as
    /// `mask.1` says and `causal` dropping keys after the query (see
    /// [`cinder_device::DeviceTensor::masked_softmax`]); a row with every key dropped is
    /// zeros. Differentiable in `self` (any order; the mask is a constant). Errors as the
    /// device op.
    pub fn masked_softmax(
        &self,
        mask: Option<(&Tensor, cinder_device::AttnMask)>,
        causal: bool,
        scale: f32,
    ) -> Result<Tensor> {
        let m = mask.map(|(m, k)| (m.raw(), k));
        let y = self
            .raw()
            .masked_softmax(m.as_ref().map(|(m, k)| (m, *k)), causal, scale)?;
        Ok(Tensor::from_op("masked_softmax", y, &[self], move |c| {
            // Dropped keys have y = 0, so the softmax backward gives them no gradient.
            Ok(vec![Some(
                c.grad.softmax_backward(c.output, -1)?.mul_scalar(scale)?,
            )])
        }))
    }
}
