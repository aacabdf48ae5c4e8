//! Ops that leave the forward value alone and change only the gradient: the gradient
//! reversal of domain-adversarial training.

use cinder_device::{Error, Result};

use crate::Tensor;

impl Tensor {
    /// The gradient-reversal layer of Ganin and Lempitsky (DANN): the identity forward (the
    /// result shares `self`'s buffer, as `view_as`), `-lambda * grad` backward. The backward
    /// is recorded like any op, so higher-order gradients flow through it (each order
    /// scaled by `-lambda` once more). PyTorch has no built-in; this is the usual
    /// `torch.autograd.Function` whose backward returns `grad.neg() * lambda`. `lambda = 0`
    /// blocks the gradient (as `detach`, but recorded). Returns `Err` when `lambda` is not
    /// finite or `self` is a `u32` tensor.
    pub fn grad_reverse(&self, lambda: f32) -> Result<Tensor> {
        let d = self.raw();
        if !lambda.is_finite() {
            return Err(Error::invalid(
                "grad_reverse",
                format!("lambda must be finite, got {lambda}"),
                d.shape(),
            ));
        }
        d.expect_dtype("grad_reverse", cinder_device::DType::F32)?;
        Ok(Tensor::from_op("grad_reverse", d, &[self], move |c| {
            Ok(vec![Some(c.grad.mul_scalar(-lambda)?)])
        }))
    }
}
