//! Convolutions and their backward rules. Each backward kernel is an op with a rule of its
//! own: the input and weight gradients are bilinear in (grad, weight) and (grad, input), and
//! their adjoints are the forward convolution and the other gradient, so the family is
//! closed under differentiation (higher-order gradients through convolutions, as WGAN-GP on
//! DCGAN needs).

use cinder_device::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use cinder_device::{DeviceTensor, Result};

use crate::tensor::Tensor;

fn add_bias(y: Tensor, bias: Option<&Tensor>, channels: usize) -> Result<Tensor> {
    match bias {
        None => Ok(y),
        Some(b) => {
            if b.shape() != [channels] {
                return Err(cinder_device::Error::shapes(
                    "conv bias",
                    &b.shape(),
                    &[channels],
                ));
            }
            y.add(&b.reshape(&[channels, 1, 1])?)
        }
    }
}

impl Tensor {
    /// 2-D convolution of `[N, C, H, W]` with `weight` `[O, C, KH, KW]` and an optional
    /// `bias` `[O]`. Errors as [`DeviceTensor::conv2d`].
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        let p = *p;
        let y = self.data().conv2d(&weight.data(), None, &p)?;
        let o = y.shape()[1];
        let y = Tensor::from_op("conv2d", y, &[self, weight], move |c| {
            let (g, x, w) = (c.grad, c.input(0), c.input(1));
            let gx = x
                .requires_grad()
                .then(|| Tensor::conv2d_backward_input(g, w, &x.shape(), &p))
                .transpose()?;
            let gw = w
                .requires_grad()
                .then(|| Tensor::conv2d_backward_weight(g, x, &w.shape(), &p))
                .transpose()?;
            Ok(vec![gx, gw])
        });
        add_bias(y, bias, o)
    }

    /// Gradient of [`Tensor::conv2d`] with respect to its input, as an op (differentiable in
    /// `grad_out` and `weight`). Errors as [`DeviceTensor::conv2d_backward_input`].
    pub fn conv2d_backward_input(
        grad_out: &Tensor,
        weight: &Tensor,
        input_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        let p = *p;
        let y =
            DeviceTensor::conv2d_backward_input(&grad_out.data(), &weight.data(), input_shape, &p)?;
        Ok(Tensor::from_op(
            "conv2d_backward_input",
            y,
            &[grad_out, weight],
            move |c| {
                // y = A_w^T g, the adjoint of conv in x: d/dg = conv(G, w); d/dw = the weight
                // gradient of conv(G; w) against g.
                let (gg, g, w) = (c.grad, c.input(0), c.input(1));
                let dg = g
                    .requires_grad()
                    .then(|| gg.conv2d(w, None, &p))
                    .transpose()?;
                let dw = w
                    .requires_grad()
                    .then(|| Tensor::conv2d_backward_weight(g, gg, &w.shape(), &p))
                    .transpose()?;
                Ok(vec![dg, dw])
            },
        ))
    }

    /// Gradient of [`Tensor::conv2d`] with respect to its weight, as an op (differentiable
    /// in `grad_out` and `input`). Errors as [`DeviceTensor::conv2d_backward_weight`].
    pub fn conv2d_backward_weight(
        grad_out: &Tensor,
        input: &Tensor,
        weight_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        let p = *p;
        let y = DeviceTensor::conv2d_backward_weight(
            &grad_out.data(),
            &input.data(),
            weight_shape,
            &p,
        )?;
        Ok(Tensor::from_op(
            "conv2d_backward_weight",
            y,
            &[grad_out, input],
            move |c| {
                // <W', y> = <conv(x; W'), g>: d/dg = conv(x; W'); d/dx = conv's input gradient.
                let (gw, g, x) = (c.grad, c.input(0), c.input(1));
                let dg = g
                    .requires_grad()
                    .then(|| x.conv2d(gw, None, &p))
                    .transpose()?;
                let dx = x
                    .requires_grad()
                    .then(|| Tensor::conv2d_backward_input(g, gw, &x.shape(), &p))
                    .transpose()?;
                Ok(vec![dg, dx])
            },
        ))
    }

    /// Gradient of a convolution's bias: `grad_out` summed to `[O]`. Errors as
    /// [`DeviceTensor::conv2d_backward_bias`].
    pub fn conv2d_backward_bias(grad_out: &Tensor) -> Result<Tensor> {
        if grad_out.rank() != 4 {
            DeviceTensor::conv2d_backward_bias(&grad_out.data())?;
        }
        grad_out.sum_axes(&[0, 2, 3], false)
    }

    /// 2-D transposed convolution of `[N, C_in, H, W]` with `weight` `[C_in, C_out, KH, KW]`
    /// and an optional `bias` `[C_out]`. Errors as [`DeviceTensor::conv_transpose2d`].
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: &ConvTranspose2dParams,
    ) -> Result<Tensor> {
        let p = *p;
        let y = self.data().conv_transpose2d(&weight.data(), None, &p)?;
        let o = y.shape()[1];
        let y = Tensor::from_op("conv_transpose2d", y, &[self, weight], move |c| {
            let (g, x, w) = (c.grad, c.input(0), c.input(1));
            let gx = x
                .requires_grad()
                .then(|| Tensor::conv_transpose2d_backward_input(g, w, &x.shape(), &p))
                .transpose()?;
            let gw = w
                .requires_grad()
                .then(|| Tensor::conv_transpose2d_backward_weight(g, x, &w.shape(), &p))
                .transpose()?;
            Ok(vec![gx, gw])
        });
        add_bias(y, bias, o)
    }

    /// Gradient of [`Tensor::conv_transpose2d`] with respect to its input, as an op.
    /// Errors as [`DeviceTensor::conv_transpose2d_backward_input`].
    pub fn conv_transpose2d_backward_input(
        grad_out: &Tensor,
        weight: &Tensor,
        input_shape: &[usize],
        p: &ConvTranspose2dParams,
    ) -> Result<Tensor> {
        let p = *p;
        let y = DeviceTensor::conv_transpose2d_backward_input(
            &grad_out.data(),
            &weight.data(),
            input_shape,
            &p,
        )?;
        Ok(Tensor::from_op(
            "conv_transpose2d_backward_input",
            y,
            &[grad_out, weight],
            move |c| {
                let (gg, g, w) = (c.grad, c.input(0), c.input(1));
                let dg = g
                    .requires_grad()
                    .then(|| gg.conv_transpose2d(w, None, &p))
                    .transpose()?;
                let dw = w
                    .requires_grad()
                    .then(|| Tensor::conv_transpose2d_backward_weight(g, gg, &w.shape(), &p))
                    .transpose()?;
                Ok(vec![dg, dw])
            },
        ))
    }

    /// Gradient of [`Tensor::conv_transpose2d`] with respect to its weight, as an op.
    /// Errors as [`DeviceTensor::conv_transpose2d_backward_weight`].
    pub fn conv_transpose2d_backward_weight(
        grad_out: &Tensor,
        input: &Tensor,
        weight_shape: &[usize],
        p: &ConvTranspose2dParams,
    ) -> Result<Tensor> {
        let p = *p;
        let y = DeviceTensor::conv_transpose2d_backward_weight(
            &grad_out.data(),
            &input.data(),
            weight_shape,
            &p,
        )?;
        Ok(Tensor::from_op(
            "conv_transpose2d_backward_weight",
            y,
            &[grad_out, input],
            move |c| {
                let (gw, g, x) = (c.grad, c.input(0), c.input(1));
                let dg = g
                    .requires_grad()
                    .then(|| x.conv_transpose2d(gw, None, &p))
                    .transpose()?;
                let dx = x
                    .requires_grad()
                    .then(|| Tensor::conv_transpose2d_backward_input(g, gw, &x.shape(), &p))
                    .transpose()?;
                Ok(vec![dg, dx])
            },
        ))
    }
}
