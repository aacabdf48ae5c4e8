//! Losses against `tests/fixtures/loss.safetensors`: every reduction, class weights, label
//! smoothing, probability targets, `ignore_index` (an all-ignored batch, an ignored index
//! beyond the classes), N-d inputs, and the edge values (p of exactly 0 and 1, saturated
//! sigmoids and logits, ties at hinges and kinks), the Gram matrix and style loss of
//! neural style transfer, forward and gradients.

use cinder::nn::loss::{
    CrossEntropy, KlReduction, Nll, Reduction, TripletMargin, bce, bce_with_logits,
    cosine_embedding, cross_entropy, gaussian_nll, gram_matrix, huber, kl_div, l1, margin_ranking,
    mse, nll, smooth_l1, style_loss, triplet_margin,
};
use cinder::{Error, Result, Tensor};

use crate::harness::{Case, Produced, run_family, unknown};

fn reduction(case: &Case) -> Result<Reduction> {
    Ok(match case.str("reduction")? {
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        "none" => Reduction::None,
        other => {
            return Err(Error::invalid(
                "conformance",
                format!("case {}: reduction {other}", case.name),
                &[],
            ));
        }
    })
}

fn kl_reduction(case: &Case) -> Result<KlReduction> {
    if case.str("reduction")? == "batchmean" {
        return Ok(KlReduction::BatchMean);
    }
    reduction(case).map(KlReduction::from)
}

/// The input `name`, if the case has it.
fn input<'a>(case: &Case, x: &'a [Tensor], name: &str) -> Option<&'a Tensor> {
    case.input_names()
        .iter()
        .position(|n| n == name)
        .map(|i| &x[i])
}

fn ignore_index(case: &Case) -> Result<Option<u32>> {
    case.args
        .get("ignore_index")
        .map(|_| {
            let i = case.usize("ignore_index")?;
            u32::try_from(i).map_err(|_| Error::invalid("conformance", "ignore_index", &[]))
        })
        .transpose()
}

fn run(case: &Case) -> Result<Produced> {
    if case.op == "gram_matrix" {
        return case.op_outputs(|x| Ok(vec![gram_matrix(&x[0])?]));
    }
    case.op_outputs(|x| {
        let r = reduction_or_kl(case)?;
        let get = |name: &str| input(case, x, name);
        Ok(vec![match case.op.as_str() {
            "cross_entropy" => {
                let opts = CrossEntropy {
                    weight: get("weight").cloned(),
                    label_smoothing: case.f32_or("label_smoothing", 0.0)?,
                    reduction: r.0,
                    ignore_index: ignore_index(case)?,
                };
                cross_entropy(&x[0], &x[1], &opts)?
            }
            "nll" => {
                let opts = Nll {
                    weight: get("weight").cloned(),
                    reduction: r.0,
                    ignore_index: ignore_index(case)?,
                };
                nll(&x[0], &x[1], &opts)?
            }
            "bce" => bce(&x[0], &x[1], r.0)?,
            "bce_sigmoid" => bce(&x[0].sigmoid()?, &x[1], r.0)?,
            "bce_with_logits" => bce_with_logits(&x[0], &x[1], get("pos_weight"), r.0)?,
            "kl_div" => kl_div(&x[0], &x[1], r.1, case.bool_or("log_target", false)?)?,
            "smooth_l1" => smooth_l1(&x[0], &x[1], case.f32("beta")?, r.0)?,
            "huber" => huber(&x[0], &x[1], case.f32("delta")?, r.0)?,
            "mse" => mse(&x[0], &x[1], r.0)?,
            "l1" => l1(&x[0], &x[1], r.0)?,
            "gaussian_nll" => gaussian_nll(
                &x[0],
                &x[1],
                &x[2],
                case.bool_or("full", false)?,
                case.f32("eps")?,
                r.0,
            )?,
            "triplet_margin" => {
                let d = TripletMargin::default();
                let opts = TripletMargin {
                    margin: case.f32_or("margin", d.margin)?,
                    p: case.f32_or("p", d.p)?,
                    eps: case.f32_or("eps", d.eps)?,
                    swap: case.bool_or("swap", false)?,
                    reduction: r.0,
                };
                triplet_margin(&x[0], &x[1], &x[2], &opts)?
            }
            "cosine_embedding" => cosine_embedding(&x[0], &x[1], &x[2], case.f32("margin")?, r.0)?,
            "margin_ranking" => margin_ranking(&x[0], &x[1], &x[2], case.f32("margin")?, r.0)?,
            "style_loss" => style_loss(&x[0], &x[1], r.0)?,
            _ => return Err(unknown(case)),
        }])
    })
}

/// The case's reduction, both as a [`Reduction`] (Mean for `batchmean`, which only
/// `kl_div` takes) and as a [`KlReduction`].
fn reduction_or_kl(case: &Case) -> Result<(Reduction, KlReduction)> {
    let kl = kl_reduction(case)?;
    let r = match kl {
        KlReduction::BatchMean => Reduction::Mean,
        _ => reduction(case)?,
    };
    Ok((r, kl))
}

#[test]
fn loss() {
    run_family("loss", run);
}
