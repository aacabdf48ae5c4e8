//! Neural style transfer's losses (Gatys, Ecker and Bethge): the Gram matrix of feature
//! maps and the style loss that compares them.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};

use super::{Reduction, mse};

/// The Gram matrix of feature maps `[N, C, H, W]` (or one map `[C, H, W]`): with `F` the
/// `[C, H W]` matrix of one image's features, `F F^T / (C H W)`, so `[N, C, C]` (or
/// `[C, C]`). The scale is the PyTorch neural-style tutorial's (`G.div(a * b * c * d)`
/// with one image per batch), per image here, so images of any size and channel count give
/// matrices of comparable size. Returns `Err` for another rank, a `u32` tensor, or an empty
/// spatial size (its Gram matrix would divide by zero).
pub fn gram_matrix(features: &Tensor) -> Result<Tensor> {
    let s = features.shape();
    let (n, c, hw, batched) = match *s.as_slice() {
        [n, c, h, w] => (n, c, h * w, true),
        [c, h, w] => (1, c, h * w, false),
        _ => {
            return Err(Error::invalid(
                "gram_matrix",
                "needs [N, C, H, W] or [C, H, W]",
                &s,
            ));
        }
    };
    if hw == 0 || c == 0 {
        return Err(Error::invalid("gram_matrix", "empty feature maps", &s));
    }
    let f = features.reshape(&[n, c, hw])?;
    let g = f
        .matmul_t(&f, false, true)?
        .mul_scalar(1.0 / (c * hw) as f32)?;
    if batched { Ok(g) } else { g.reshape(&[c, c]) }
}

/// The style loss of feature maps `features` against a target Gram matrix: the mean squared
/// error between [`gram_matrix`]`(features)` and `target_gram` (`[N, C, C]`, or `[C, C]`
/// broadcast over the batch, as one style image for every image), reduced by `r`. Returns
/// `Err` as [`gram_matrix`], or when `target_gram` has another channel count.
pub fn style_loss(features: &Tensor, target_gram: &Tensor, r: Reduction) -> Result<Tensor> {
    let g = gram_matrix(features)?;
    let ts = target_gram.shape();
    let t = if ts.len() == 2 && g.shape().len() == 3 {
        target_gram
            .reshape(&[1, ts[0], ts[1]])?
            .broadcast_to(&g.shape())?
    } else {
        target_gram.clone()
    };
    if t.shape() != g.shape() {
        return Err(Error::shapes("style_loss", &g.shape(), &ts));
    }
    mse(&g, &t, r)
}
