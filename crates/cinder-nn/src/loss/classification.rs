//! Classification losses: binary cross-entropy (on probabilities and, stably, on logits),
//! cross-entropy from logits with class indices or class probabilities, and NLL, over
//! `[N, C]`, `[N, C, d1, ...]` and unbatched `[C]` inputs.

use cinder_autograd::Tensor;
use cinder_device::{DType, Error, Result};

use super::{Reduction, same_shape};

/// Binary cross-entropy on probabilities (`nn.BCELoss`): `(t - 1) max(log(1 - p), -100) -
/// t max(log p, -100)`, PyTorch's clamped form, so `p` of exactly 0 or 1 (a sigmoid
/// saturated in f32, from logits beyond about ±17) gives a finite loss.
///
/// The backward rule is PyTorch's, not the derivative of the clamped logs: `d/dp = g (p -
/// t) / max((1 - p) p, 1e-12)`, finite at `p = 0` and `p = 1`, so `bce(sigmoid(x), t)` has
/// the finite gradient PyTorch gives; `d/dt = g (log(1 - p) - log p)` (infinite at `p = 0`
/// or 1, as PyTorch). The rule is written with `Tensor` ops, so it has gradients itself.
///
/// An element of `p` or `t` outside `[0, 1]` (or NaN) is an error, as PyTorch raises:
/// checked on the device, it is reported as [`cinder_device::Error::OutOfDomain`] at the
/// next readback or sync. Returns `Err` when the shapes differ or for `u32` tensors.
pub fn bce(prob: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("bce", prob, target)?;
    let (p, t) = (prob.raw(), target.raw());
    // PyTorch raises for these; checked on the device, reported at the next readback
    p.check_range(
        "bce",
        "all elements of input should be between 0 and 1",
        0.0,
        1.0,
    )?;
    t.check_range(
        "bce",
        "all elements of target should be between 0 and 1",
        0.0,
        1.0,
    )?;
    let lp = p.log()?.maximum_scalar(-100.0)?;
    let lq = p.rsub_scalar(1.0)?.log()?.maximum_scalar(-100.0)?;
    let l = t.sub_scalar(1.0)?.mul(&lq)?.sub(&t.mul(&lp)?)?;
    let l = Tensor::from_op("binary_cross_entropy", l, &[prob, target], |c| {
        let (g, p, t) = (c.grad, c.input(0), c.input(1));
        let gp = p
            .requires_grad()
            .then(|| -> Result<Tensor> {
                let denom = p.rsub_scalar(1.0)?.mul(p)?.maximum_scalar(1e-12)?;
                g.mul(&p.sub(t)?)?.div(&denom)
            })
            .transpose()?;
        let gt = t
            .requires_grad()
            .then(|| g.mul(&p.rsub_scalar(1.0)?.log()?.sub(&p.log()?)?))
            .transpose()?;
        Ok(vec![gp, gt])
    });
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
    /// The reduction (with class indices, a weighted mean divides by the summed weights of
    /// the targets that are not ignored).
    pub reduction: Reduction,
    /// Class index whose targets are left out: their loss is 0 and they count in no mean.
    /// PyTorch's default is -100, which a `u32` target cannot hold, so "no index" is
    /// `None` here (the default) and any class index can be given. Only for class-index
    /// targets (PyTorch raises with probability targets too).
    pub ignore_index: Option<u32>,
}

/// Options of [`nll`] (PyTorch's `nn.NLLLoss` arguments).
#[derive(Clone, Debug, Default)]
pub struct Nll {
    /// Per-class weights `[C]`.
    pub weight: Option<Tensor>,
    /// The reduction (a weighted mean divides by the summed weights of the targets that
    /// are not ignored).
    pub reduction: Reduction,
    /// Class index whose targets are left out (see [`CrossEntropy::ignore_index`]).
    pub ignore_index: Option<u32>,
}

/// The layout of a class-dimension loss: `x` viewed with the class dimension at 1 (an
/// unbatched `[C]` input becomes `[1, C]`), the number of classes, and the shape of the
/// per-sample losses (`[N, d1, ...]`, or `[]` for an unbatched input).
struct Layout {
    x: Tensor,
    classes: usize,
    out: Vec<usize>,
}

fn layout(op: &'static str, x: &Tensor) -> Result<Layout> {
    let s = x.shape();
    match s.len() {
        0 => Err(Error::invalid(
            op,
            "expects [C], [N, C] or [N, C, d1, ...]",
            &s,
        )),
        1 => Ok(Layout {
            x: x.reshape(&[1, s[0]])?,
            classes: s[0],
            out: vec![],
        }),
        _ => {
            let mut out = vec![s[0]];
            out.extend_from_slice(&s[2..]);
            Ok(Layout {
                x: x.clone(),
                classes: s[1],
                out,
            })
        }
    }
}

fn check_weight(op: &'static str, weight: Option<&Tensor>, c: usize) -> Result<()> {
    match weight {
        Some(w) if w.shape() != [c] => Err(Error::shapes(op, &w.shape(), &[c])),
        _ => Ok(()),
    }
}

/// `weight` `[C]` reshaped to broadcast along dimension 1 of a tensor of rank `rank`.
fn class_weight_view(w: &Tensor, rank: usize) -> Result<Tensor> {
    let mut s = vec![1; rank];
    s[1] = w.numel();
    w.reshape(&s)
}

/// The per-sample terms of a class-index loss from log-probabilities laid out as `l`:
/// `-w[y] logp[y]` (`picked`), the target weights with ignored targets at 0 (`wy`, `None`
/// when there are neither weights nor an ignore index) and the "kept" mask (1 where the
/// target is not ignored).
struct Picked {
    picked: Tensor,
    wy: Option<Tensor>,
    keep: Option<Tensor>,
}

fn pick(
    op: &'static str,
    l: &Layout,
    logp: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    ignore_index: Option<u32>,
) -> Result<Picked> {
    target.raw().expect_dtype(op, DType::U32)?;
    if target.shape() != l.out {
        return Err(Error::shapes(op, &l.x.shape(), &target.shape()));
    }
    check_weight(op, weight, l.classes)?;
    let (safe, keep) = match ignore_index {
        None => (target.clone(), None),
        Some(i) => {
            // Compared in f32, exact for class indices below 2^24.
            if l.classes > 1 << 24 {
                return Err(Error::invalid(
                    op,
                    format!("ignore_index needs at most 2^24 classes, got {}", l.classes),
                    &l.x.shape(),
                ));
            }
            let tf = target.to_dtype(DType::F32)?;
            let keep = tf.ne_scalar(i as f32)?;
            // An ignored target may be out of range (255 with 10 classes): gather class 0.
            (tf.mul(&keep)?.to_dtype(DType::U32)?, Some(keep))
        }
    };
    let mut idx_shape = l.x.shape();
    idx_shape[1] = 1;
    let picked = logp
        .gather(1, &safe.reshape(&idx_shape)?)?
        .reshape(&l.out)?
        .neg()?;
    let n = safe.numel();
    let wy = match weight {
        Some(w) => {
            let wy = w.index_select(0, &safe.reshape(&[n])?)?.reshape(&l.out)?;
            Some(match &keep {
                Some(k) => wy.mul(k)?,
                None => wy,
            })
        }
        None => keep.clone(),
    };
    let picked = match (&weight, &wy) {
        (Some(_), Some(wy)) => picked.mul(wy)?,
        _ => picked,
    };
    Ok(Picked { picked, wy, keep })
}

/// Reduces per-sample class-index losses: the mean divides by the kept targets' weights
/// (their count without class weights), so an all-ignored batch gives 0 / 0 = NaN and a
/// zero gradient, as PyTorch.
fn reduce_picked(per: Tensor, p: &Picked, r: Reduction) -> Result<Tensor> {
    // Ignored targets give exactly 0, even where the gathered log-probability is infinite.
    let per = match &p.keep {
        Some(k) => Tensor::where_cond(k, &per, &per.zeros_like()?)?,
        None => per,
    };
    match (r, &p.wy) {
        (Reduction::Mean, Some(wy)) => per.sum_all()?.div(&wy.sum_all()?),
        (r, _) => r.apply(per),
    }
}

/// Negative log-likelihood (`nn.NLLLoss`) of log-probabilities `[N, C]`, `[N, C, d1, ...]`
/// or `[C]` at u32 class indices `[N]`, `[N, d1, ...]` or `[]`: `-w[y] logp[y]` per sample,
/// with optional class weights `[C]` (the weighted mean divides by the sum of the targets'
/// weights, as PyTorch) and an optional ignored class (see [`Nll`]). A target outside
/// `0..C` that is not ignored is an error of the gather (today it reads 0).
///
/// Returns `Err` for an input of rank 0, a target that is not u32 or whose shape is not
/// the input's without dimension 1, weights of a shape other than `[C]`, or an
/// `ignore_index` with more than 2^24 classes.
pub fn nll(logp: &Tensor, target: &Tensor, opts: &Nll) -> Result<Tensor> {
    let op = "nll";
    let l = layout(op, logp)?;
    let p = pick(
        op,
        &l,
        &l.x,
        target,
        opts.weight.as_ref(),
        opts.ignore_index,
    )?;
    reduce_picked(p.picked.clone(), &p, opts.reduction)
}

/// Cross-entropy from logits `[N, C]`, `[N, C, d1, ...]` or `[C]` (classes along dimension
/// 1, or 0 when unbatched), as `nn.CrossEntropyLoss`, with either target PyTorch takes:
///
/// - **class indices** (u32, the input's shape without the class dimension):
///   `(1 - e) nll + e / C * sum_c w_c (-log p_c)` per sample, with class weights `w`,
///   label smoothing `e` and `ignore_index` (ignored targets give 0 and are left out of
///   the mean, whose divisor is the kept targets' summed weights; an all-ignored batch
///   gives NaN, as PyTorch);
/// - **class probabilities** (f32 of the input's shape): `-sum_c w_c t'_c log p_c` per
///   sample with `t' = (1 - e) t + e / C`; the mean divides by the number of samples
///   (`N d1 ...`), not by weights, as PyTorch.
///
/// Returns `Err` for an input of rank 0, a target of another shape or dtype, weights of a
/// shape other than `[C]`, a smoothing outside `[0, 1]`, an `ignore_index` with
/// probability targets (PyTorch raises too) or with more than 2^24 classes.
pub fn cross_entropy(logits: &Tensor, target: &Tensor, opts: &CrossEntropy) -> Result<Tensor> {
    let op = "cross_entropy";
    let l = layout(op, logits)?;
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(Error::invalid(
            op,
            format!("label_smoothing {eps} outside [0, 1]"),
            &logits.shape(),
        ));
    }
    let c = l.classes;
    let w = opts.weight.as_ref();
    let logp = l.x.log_softmax(1)?;
    if target.dtype() == DType::F32 {
        if target.shape() != logits.shape() {
            return Err(Error::shapes(op, &logits.shape(), &target.shape()));
        }
        if opts.ignore_index.is_some() {
            return Err(Error::invalid(
                op,
                "ignore_index is not supported for probability targets",
                &logits.shape(),
            ));
        }
        check_weight(op, w, c)?;
        let t = target.reshape(&l.x.shape())?;
        let t = if eps > 0.0 {
            t.affine(1.0 - eps, eps / c as f32)?
        } else {
            t
        };
        let terms = logp.mul(&t)?;
        let terms = match w {
            Some(w) => terms.mul(&class_weight_view(w, terms.rank())?)?,
            None => terms,
        };
        let per = terms.sum_axis(1, false)?.neg()?.reshape(&l.out)?;
        return opts.reduction.apply(per);
    }
    let p = pick(op, &l, &logp, target, w, opts.ignore_index)?;
    if eps == 0.0 {
        return reduce_picked(p.picked.clone(), &p, opts.reduction);
    }
    let smooth = match w {
        None => logp.sum_axis(1, false)?,
        Some(w) => logp
            .mul(&class_weight_view(w, logp.rank())?)?
            .sum_axis(1, false)?,
    }
    .neg()?
    .reshape(&l.out)?;
    let per = p
        .picked
        .mul_scalar(1.0 - eps)?
        .add(&smooth.mul_scalar(eps / c as f32)?)?;
    reduce_picked(per, &p, opts.reduction)
}
