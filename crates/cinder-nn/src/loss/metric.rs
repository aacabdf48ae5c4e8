//! Metric-learning losses: contrastive (Siamese pairs) and triplet margin.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};

use super::{Reduction, same_shape};

/// Contrastive loss of Hadsell, Chopra and LeCun for embedding pairs `[N, D]` and labels
/// `[N]` (1 = similar, 0 = dissimilar): `y d^2 + (1 - y) max(0, margin - d)^2` with `d`
/// the Euclidean distance, reduced over the pairs. Returns `Err` on shape mismatch or a
/// negative margin.
pub fn contrastive(
    a: &Tensor,
    b: &Tensor,
    similar: &Tensor,
    margin: f32,
    r: Reduction,
) -> Result<Tensor> {
    same_shape("contrastive", a, b)?;
    let s = a.shape();
    if s.len() != 2 || similar.shape() != [s[0]] || margin < 0.0 {
        return Err(Error::shapes("contrastive", &s, &similar.shape()));
    }
    let d2 = a.sub(b)?.square()?.sum_axis(1, false)?;
    // sqrt with a floor, so identical pairs have a finite gradient
    let d = d2.add_scalar(1e-12)?.sqrt()?;
    let push = d.rsub_scalar(margin)?.relu()?.square()?;
    let l = similar
        .mul(&d2)?
        .add(&similar.rsub_scalar(1.0)?.mul(&push)?)?;
    r.apply(l)
}

/// Triplet margin loss (`nn.TripletMarginLoss`, p = 2): `max(d(a, p) - d(a, n) + margin,
/// 0)` with `d(x, y) = ||x - y + eps||_2`, `eps = 1e-6` as PyTorch. Inputs `[N, D]`.
/// Returns `Err` on shape mismatch.
pub fn triplet_margin(
    anchor: &Tensor,
    pos: &Tensor,
    neg: &Tensor,
    margin: f32,
    r: Reduction,
) -> Result<Tensor> {
    same_shape("triplet_margin", anchor, pos)?;
    same_shape("triplet_margin", anchor, neg)?;
    let dist = |x: &Tensor, y: &Tensor| -> Result<Tensor> {
        x.sub(y)?
            .add_scalar(1e-6)?
            .square()?
            .sum_axis(-1, false)?
            .sqrt()
    };
    let l = dist(anchor, pos)?
        .sub(&dist(anchor, neg)?)?
        .add_scalar(margin)?
        .relu()?;
    r.apply(l)
}
