//! Convolutions and their backward rules. Each backward kernel is an op with a rule of its
//! own: the input and weight gradients are bilinear in (grad, weight) and (grad, input), and
//! their adjoints are the forward convolution and the other gradient, so the family is
//! closed under differentiation (higher-order gradients through convolutions, as WGAN-GP on
//! DCGAN needs). The parameters, groups included, travel with every op of the family, so a
//! grouped (or depthwise) convolution's gradients of any order are grouped the same way.

use cinder_device::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use cinder_device::{DeviceTensor, Result};

use crate::tensor::Tensor;

/// One kind of convolution, named by its parameters: its three device calls and op names.
/// The backward rules below are written once for both kinds: the input and weight gradients
/// of a transposed convolution stand to it as those of a convolution do to it.
trait Kind: Copy + Send + Sync + 'static {
    /// Op names of the forward, the input gradient and the weight gradient.
    const NAMES: [&'static str; 3];
    fn forward(x: &DeviceTensor, w: &DeviceTensor, p: &Self) -> Result<DeviceTensor>;
    fn input_grad(
        g: &DeviceTensor,
        w: &DeviceTensor,
        s: &[usize],
        p: &Self,
    ) -> Result<DeviceTensor>;
    fn weight_grad(
        g: &DeviceTensor,
        x: &DeviceTensor,
        s: &[usize],
        p: &Self,
    ) -> Result<DeviceTensor>;
}

impl Kind for Conv2dParams {
    const NAMES: [&'static str; 3] = ["conv2d", "conv2d_backward_input", "conv2d_backward_weight"];
    fn forward(x: &DeviceTensor, w: &DeviceTensor, p: &Self) -> Result<DeviceTensor> {
        x.conv2d(w, None, p)
    }
    fn input_grad(
        g: &DeviceTensor,
        w: &DeviceTensor,
        s: &[usize],
        p: &Self,
    ) -> Result<DeviceTensor> {
        DeviceTensor::conv2d_backward_input(g, w, s, p)
    }
    fn weight_grad(
        g: &DeviceTensor,
        x: &DeviceTensor,
        s: &[usize],
        p: &Self,
    ) -> Result<DeviceTensor> {
        DeviceTensor::conv2d_backward_weight(g, x, s, p)
    }
}

impl Kind for ConvTranspose2dParams {
    const NAMES: [&'static str; 3] = [
        "conv_transpose2d",
        "conv_transpose2d_backward_input",
        "conv_transpose2d_backward_weight",
    ];
    fn forward(x: &DeviceTensor, w: &DeviceTensor, p: &Self) -> Result<DeviceTensor> {
        x.conv_transpose2d(w, None, p)
    }
    fn input_grad(
        g: &DeviceTensor,
        w: &DeviceTensor,
        s: &[usize],
        p: &Self,
    ) -> Result<DeviceTensor> {
        DeviceTensor::conv_transpose2d_backward_input(g, w, s, p)
    }
    fn weight_grad(
        g: &DeviceTensor,
        x: &DeviceTensor,
        s: &[usize],
        p: &Self,
    ) -> Result<DeviceTensor> {
        DeviceTensor::conv_transpose2d_backward_weight(g, x, s, p)
    }
}

/// A gradient formula of [`bilinear`]: `(grad, other input, this input's shape, params)`.
type Rule<K> = fn(&Tensor, &Tensor, &[usize], K) -> Result<Tensor>;

/// Records `y`, bilinear in `(a, b)`, with the rule `da = left(G, b)` and
/// `db = right(a, G)`, each only when that input requires a gradient. Every op of the
/// family is such a pair, and each formula is again an op of the family.
fn bilinear<K: Kind>(
    name: &'static str,
    y: DeviceTensor,
    (a, b): (&Tensor, &Tensor),
    p: K,
    left: Rule<K>,
    right: Rule<K>,
) -> Tensor {
    Tensor::from_op(name, y, &[a, b], move |c| {
        let (g, a, b) = (c.grad, c.input(0), c.input(1));
        let da = a
            .requires_grad()
            .then(|| left(g, b, &a.shape(), p))
            .transpose()?;
        let db = b
            .requires_grad()
            .then(|| right(a, g, &b.shape(), p))
            .transpose()?;
        Ok(vec![da, db])
    })
}

/// The convolution of `x` with `w` (no bias), recorded with its rule.
fn conv<K: Kind>(x: &Tensor, w: &Tensor, p: K) -> Result<Tensor> {
    let y = K::forward(&x.raw(), &w.raw(), &p)?;
    Ok(bilinear(
        K::NAMES[0],
        y,
        (x, w),
        p,
        |g, w, xs, p| input_grad(g, w, xs, p),
        |x, g, ws, p| weight_grad(g, x, ws, p),
    ))
}

/// The input gradient as an op: `y = A_w^T g`, the adjoint of the convolution in its input,
/// so `d/dg = conv(G; w)` and `d/dw` is the weight gradient of `conv(G; w)` against `g`.
fn input_grad<K: Kind>(g: &Tensor, w: &Tensor, shape: &[usize], p: K) -> Result<Tensor> {
    let y = K::input_grad(&g.raw(), &w.raw(), shape, &p)?;
    Ok(bilinear(
        K::NAMES[1],
        y,
        (g, w),
        p,
        |gg, w, _, p| conv(gg, w, p),
        |g, gg, ws, p| weight_grad(g, gg, ws, p),
    ))
}

/// The weight gradient as an op: `<W', y> = <conv(x; W'), g>`, so `d/dg = conv(x; W')` and
/// `d/dx` is the convolution's input gradient with `W'`.
fn weight_grad<K: Kind>(g: &Tensor, x: &Tensor, shape: &[usize], p: K) -> Result<Tensor> {
    let y = K::weight_grad(&g.raw(), &x.raw(), shape, &p)?;
    Ok(bilinear(
        K::NAMES[2],
        y,
        (g, x),
        p,
        |gw, x, _, p| conv(x, gw, p),
        |g, gw, xs, p| input_grad(g, gw, xs, p),
    ))
}

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
    /// 2-D convolution of `[N, C, H, W]` with `weight` `[O, C / groups, KH, KW]` and an
    /// optional `bias` `[O]`. Errors as [`DeviceTensor::conv2d`].
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        let Some(b) = bias else {
            return conv(self, weight, *p);
        };
        let o = weight.shape().first().copied().unwrap_or(0);
        if b.shape() != [o] {
            return Err(cinder_device::Error::shapes("conv bias", &b.shape(), &[o]));
        }
        // The device adds the bias inside the kernel that computes the product.
        let y = self.raw().conv2d(&weight.raw(), Some(&b.raw()), p)?;
        let p = *p;
        Ok(Tensor::from_op("conv2d", y, &[self, weight, b], move |c| {
            let (g, x, w, b) = (c.grad, c.input(0), c.input(1), c.input(2));
            let dx = x
                .requires_grad()
                .then(|| input_grad(g, w, &x.shape(), p))
                .transpose()?;
            let dw = w
                .requires_grad()
                .then(|| weight_grad(g, x, &w.shape(), p))
                .transpose()?;
            let db = b
                .requires_grad()
                .then(|| g.sum_axes(&[0, 2, 3], false))
                .transpose()?;
            Ok(vec![dx, dw, db])
        }))
    }

    /// 2-D transposed convolution of `[N, C_in, H, W]` with `weight`
    /// `[C_in, C_out / groups, KH, KW]` and an optional `bias` `[C_out]`. Errors as
    /// [`DeviceTensor::conv_transpose2d`].
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: &ConvTranspose2dParams,
    ) -> Result<Tensor> {
        let y = conv(self, weight, *p)?;
        let o = y.shape()[1];
        add_bias(y, bias, o)
    }
}
