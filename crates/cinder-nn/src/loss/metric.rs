//! Metric-learning and ranking losses: contrastive (Siamese pairs), triplet margin, cosine
//! embedding and margin ranking.

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

/// Options of [`triplet_margin`], PyTorch's `nn.TripletMarginLoss` arguments and
/// defaults: margin 1, p 2, eps 1e-6, no swap, mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TripletMargin {
    /// The margin, `> 0` (PyTorch raises otherwise).
    pub margin: f32,
    /// The norm's degree: any `p > 0`, or `f32::INFINITY` (the largest difference).
    pub p: f32,
    /// Added to every difference before the norm, as PyTorch's `pairwise_distance`.
    pub eps: f32,
    /// Use `min(d(a, n), d(p, n))` as the negative distance (Balntas et al.'s swap).
    pub swap: bool,
    /// The reduction over the triplets.
    pub reduction: Reduction,
}

impl Default for TripletMargin {
    fn default() -> Self {
        TripletMargin {
            margin: 1.0,
            p: 2.0,
            eps: 1e-6,
            swap: false,
            reduction: Reduction::Mean,
        }
    }
}

/// `||x - y + eps||_p` along the last dimension (`F.pairwise_distance`).
fn pairwise_distance(x: &Tensor, y: &Tensor, p: f32, eps: f32) -> Result<Tensor> {
    let d = x.sub(y)?.add_scalar(eps)?;
    if p == 2.0 {
        d.square()?.sum_axis(-1, false)?.sqrt()
    } else if p == 1.0 {
        d.abs()?.sum_axis(-1, false)
    } else if p == f32::INFINITY {
        d.abs()?.amax_axis(-1, false)
    } else {
        d.abs()?.powf(p)?.sum_axis(-1, false)?.powf(1.0 / p)
    }
}

/// Triplet margin loss (`nn.TripletMarginLoss`): `max(d(a, p) - d(a, n) + margin, 0)` per
/// triplet with `d(x, y) = ||x - y + eps||_p` along the last dimension; with `swap`, `d(a,
/// n)` is replaced by `min(d(a, n), d(p, n))`. Inputs of one shape, `[N, D]` or `[D]` (any
/// rank, the last dimension is the embedding). At the hinge (`d(a, p) - d(a, n) + margin =
/// 0`) the gradient is 0, as PyTorch 2.x's `clamp_min` gives.
///
/// Returns `Err` when the shapes differ, for a rank-0 input, a margin that is not positive,
/// a `p` that is not positive, or a negative or non-finite eps.
pub fn triplet_margin(
    anchor: &Tensor,
    pos: &Tensor,
    neg: &Tensor,
    opts: &TripletMargin,
) -> Result<Tensor> {
    let op = "triplet_margin";
    same_shape(op, anchor, pos)?;
    same_shape(op, anchor, neg)?;
    let s = anchor.shape();
    if s.is_empty() {
        return Err(Error::invalid(op, "expects [N, D] or [D]", &s));
    }
    let TripletMargin {
        margin,
        p,
        eps,
        swap,
        ..
    } = *opts;
    let positive = |v: f32| v > 0.0; // false for NaN too
    if !positive(margin) || !positive(p) || !eps.is_finite() || eps < 0.0 {
        return Err(Error::invalid(
            op,
            format!("margin {margin} and p {p} must be positive, eps {eps} finite and >= 0"),
            &s,
        ));
    }
    let d_ap = pairwise_distance(anchor, pos, p, eps)?;
    let mut d_an = pairwise_distance(anchor, neg, p, eps)?;
    if swap {
        d_an = d_an.minimum(&pairwise_distance(pos, neg, p, eps)?)?;
    }
    let l = d_ap.sub(&d_an)?.add_scalar(margin)?.relu()?;
    opts.reduction.apply(l)
}

/// Cosine embedding loss (`nn.CosineEmbeddingLoss`) of pairs `x1`, `x2` (`[N, D]` with
/// targets `[N]`, or `[D]` with a target `[]`): `1 - cos(x1, x2)` where the target is 1,
/// `max(0, cos(x1, x2) - margin)` where it is -1, and 0 for any other target value, with
/// `cos = x1 . x2 / sqrt((|x1|^2 + 1e-12) (|x2|^2 + 1e-12))` as PyTorch computes it.
///
/// Returns `Err` when `x1` and `x2` differ in shape, for inputs of rank other than 1 or 2,
/// or a target whose shape is not the inputs' without the last dimension.
pub fn cosine_embedding(
    x1: &Tensor,
    x2: &Tensor,
    target: &Tensor,
    margin: f32,
    r: Reduction,
) -> Result<Tensor> {
    let op = "cosine_embedding";
    same_shape(op, x1, x2)?;
    let s = x1.shape();
    if !(s.len() == 1 || s.len() == 2) || target.shape() != s[..s.len() - 1] {
        return Err(Error::shapes(op, &s, &target.shape()));
    }
    let dot = x1.mul(x2)?.sum_axis(-1, false)?;
    let m1 = x1.square()?.sum_axis(-1, false)?.add_scalar(1e-12)?;
    let m2 = x2.square()?.sum_axis(-1, false)?.add_scalar(1e-12)?;
    let cos = dot.div(&m1.mul(&m2)?.sqrt()?)?;
    let pos = cos.rsub_scalar(1.0)?.mul(&target.eq_scalar(1.0)?)?;
    // relu: at the hinge the gradient is 0, as PyTorch's clamp_min gives
    let neg = cos
        .sub_scalar(margin)?
        .relu()?
        .mul(&target.eq_scalar(-1.0)?)?;
    r.apply(pos.add(&neg)?)
}

/// Margin ranking loss (`nn.MarginRankingLoss`): `max(0, -y (x1 - x2) + margin)` with
/// targets `y` of 1 (x1 should rank higher) or -1. The three tensors have the same rank
/// and broadcast, as PyTorch. At the hinge the gradient is 0, as PyTorch 2.x's `clamp_min`
/// gives.
///
/// Returns `Err` when the ranks differ or the shapes do not broadcast.
pub fn margin_ranking(
    x1: &Tensor,
    x2: &Tensor,
    target: &Tensor,
    margin: f32,
    r: Reduction,
) -> Result<Tensor> {
    let op = "margin_ranking";
    if x1.rank() != x2.rank() || x1.rank() != target.rank() {
        return Err(Error::shapes(op, &x1.shape(), &target.shape()));
    }
    let l = target
        .mul(&x1.sub(x2)?)?
        .neg()?
        .add_scalar(margin)?
        .relu()?;
    r.apply(l)
}
