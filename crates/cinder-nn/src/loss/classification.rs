//! Classification losses: binary cross-entropy (on probabilities and, stably, on logits),
//! cross-entropy from logits and class indices, and NLL.

use cinder_autograd::Tensor;
use cinder_device::{DType, Error, Result};

use super::{Reduction, same_shape};

/// Binary cross-entropy on probabilities (`nn.BCELoss`):
/// `-(t log p + (1 - t) log(1 - p))` with each log clamped to `>= -100` as PyTorch does.
/// Returns `Err` when the shapes differ.
pub fn bce(prob: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("bce", prob, target)?;
    let lp = prob.log()?.maximum_scalar(-100.0)?;
    let lq = prob.rsub_scalar(1.0)?.log()?.maximum_scalar(-100.0)?;
    let l = target
        .mul(&lp)?
        .add(&target.rsub_scalar(1.0)?.mul(&lq)?)?
        .neg()?;
    r.apply(l)
}

/// Binary cross-entropy on logits (`nn.BCEWithLogitsLoss`) in the stable form
/// `softplus(x) - t x`, with an optional `pos_weight` `p` (broadcast over the last
/// dimension): `(1 + (p - 1) t) softplus(-x) + (1 - t) x`. Exact for any logit. Returns
/// `Err` on shape mismatch.
pub fn bce_with_logits(
    logits: &Tensor,
    target: &Tensor,
    pos_weight: Option<&Tensor>,
    r: Reduction,
) -> Result<Tensor> {
    same_shape("bce_with_logits", logits, target)?;
    let l = match pos_weight {
        None => logits.softplus()?.sub(&target.mul(logits)?)?,
        Some(p) => {
            let w = target.mul(&p.sub_scalar(1.0)?)?.add_scalar(1.0)?;
            w.mul(&logits.neg()?.softplus()?)?
                .add(&target.rsub_scalar(1.0)?.mul(logits)?)?
        }
    };
    r.apply(l)
}

/// Options of [`cross_entropy`] (PyTorch's `nn.CrossEntropyLoss` arguments).
#[derive(Clone, Debug, Default)]
pub struct CrossEntropy {
    /// Per-class weights `[C]`.
    pub weight: Option<Tensor>,
    /// Label smoothing in `[0, 1]`.
    pub label_smoothing: f32,
    /// The reduction (a weighted mean divides by the summed weights of the targets).
    pub reduction: Reduction,
}

fn check_targets(op: &'static str, logits: &Tensor, target: &Tensor) -> Result<usize> {
    target.data().expect_dtype(op, DType::U32)?;
    let s = logits.shape();
    if s.len() != 2 || target.shape() != [s[0]] {
        return Err(Error::shapes(op, &s, &target.shape()));
    }
    Ok(s[1])
}

/// Negative log-likelihood (`nn.NLLLoss`) of log-probabilities `[N, C]` at u32 class
/// indices `[N]`, with optional class weights `[C]` (the weighted mean divides by the sum
/// of the targets' weights, as PyTorch). Returns `Err` on shape or dtype mismatch.
pub fn nll(
    logp: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    r: Reduction,
) -> Result<Tensor> {
    check_targets("nll", logp, target)?;
    let n = target.numel();
    let picked = logp
        .gather(1, &target.reshape(&[n, 1])?)?
        .reshape(&[n])?
        .neg()?;
    match weight {
        None => r.apply(picked),
        Some(w) => {
            let wy = w.index_select(0, target)?;
            let l = picked.mul(&wy)?;
            match r {
                Reduction::Mean => l.sum_all()?.div(&wy.sum_all()?),
                _ => r.apply(l),
            }
        }
    }
}

/// Cross-entropy from logits `[N, C]` and u32 class indices `[N]`, with PyTorch's class
/// weights and label smoothing: `(1 - e) nll + e / C * sum_c w_c (-log p_c)`. Returns `Err`
/// on shape or dtype mismatch, or a smoothing outside `[0, 1]`.
pub fn cross_entropy(logits: &Tensor, target: &Tensor, opts: &CrossEntropy) -> Result<Tensor> {
    let c = check_targets("cross_entropy", logits, target)?;
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(Error::invalid(
            "cross_entropy",
            format!("label_smoothing {eps} outside [0, 1]"),
            &logits.shape(),
        ));
    }
    let logp = logits.log_softmax(1)?;
    let w = opts.weight.as_ref();
    if eps == 0.0 {
        return nll(&logp, target, w, opts.reduction);
    }
    let n = target.numel();
    let picked = logp
        .gather(1, &target.reshape(&[n, 1])?)?
        .reshape(&[n])?
        .neg()?;
    let (hard, smooth, denom) = match w {
        None => (picked, logp.sum_axis(1, false)?.neg()?, None),
        Some(w) => {
            let wy = w.index_select(0, target)?;
            let smooth = logp.mul(w)?.sum_axis(1, false)?.neg()?;
            (picked.mul(&wy)?, smooth, Some(wy.sum_all()?))
        }
    };
    let per = hard
        .mul_scalar(1.0 - eps)?
        .add(&smooth.mul_scalar(eps / c as f32)?)?;
    match (opts.reduction, denom) {
        (Reduction::Mean, Some(d)) => per.sum_all()?.div(&d),
        (r, _) => r.apply(per),
    }
}
