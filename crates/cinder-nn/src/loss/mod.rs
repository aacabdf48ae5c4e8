//! Loss functions with PyTorch's formulas and a [`Reduction`] option. Each returns a
//! `Tensor` (a scalar unless the reduction is [`Reduction::None`]) and `Err` on shape or
//! dtype mismatch.

mod classification;
mod gan;
mod metric;
mod regression;
mod style;

pub use classification::{CrossEntropy, Nll, bce, bce_with_logits, cross_entropy, nll};
pub use gan::{GanLoss, Penalty, gradient_penalty};
pub use metric::{TripletMargin, contrastive, cosine_embedding, margin_ranking, triplet_margin};
pub use regression::{
    KlReduction, gaussian_nll, huber, kl_div, kl_div_gaussian, l1, mse, smooth_l1,
};
pub use style::{gram_matrix, style_loss};

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};

/// How per-element (or per-sample) losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean (PyTorch's default).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: the per-element (or per-sample) losses.
    None,
}

impl Reduction {
    /// Applies the reduction to `losses`. Returns `Err` for a `u32` tensor.
    pub fn apply(self, losses: Tensor) -> Result<Tensor> {
        match self {
            Reduction::Mean => losses.mean_all(),
            Reduction::Sum => losses.sum_all(),
            Reduction::None => Ok(losses),
        }
    }
}

/// `Err` unless `a` and `b` have the same shape.
pub(crate) fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shapes(op, &a.shape(), &b.shape()));
    }
    Ok(())
}
