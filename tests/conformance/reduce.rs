//! Reductions, softmax and log-softmax against `tests/fixtures/reduce.safetensors`.

use cinder::{Result, Tensor};

use crate::harness::{Case, Produced, run_family, unknown};

fn axis_op(case: &Case, x: &Tensor) -> Result<Vec<Tensor>> {
    let (a, k) = (case.i64("axis")? as isize, case.bool_or("keepdim", false)?);
    Ok(match case.op.as_str() {
        "sum_axis" => vec![x.sum_axis(a, k)?],
        "mean_axis" => vec![x.mean_axis(a, k)?],
        "var_axis" => vec![x.var_axis(a, true, k)?],
        "var_axis_biased" => vec![x.var_axis(a, false, k)?],
        "amax_axis" => vec![x.amax_axis(a, k)?],
        "amin_axis" => vec![x.amin_axis(a, k)?],
        "logsumexp_axis" => vec![x.logsumexp_axis(a, k)?],
        "max_axis" => {
            let (v, i) = x.max_axis(a, k)?;
            vec![v, i]
        }
        "min_axis" => {
            let (v, i) = x.min_axis(a, k)?;
            vec![v, i]
        }
        "argmax_axis" => vec![x.argmax_axis(a, k)?],
        "argmin_axis" => vec![x.argmin_axis(a, k)?],
        "softmax" => vec![x.softmax(a)?],
        "log_softmax" => vec![x.log_softmax(a)?],
        _ => return Err(unknown(case)),
    })
}

fn run(case: &Case) -> Result<Produced> {
    case.op_outputs(|x| {
        let x = &x[0];
        Ok(match case.op.as_str() {
            "sum_all" => vec![x.sum_all()?],
            "mean_all" => vec![x.mean_all()?],
            "var_all" => vec![x.var_all(true)?],
            "var_all_biased" => vec![x.var_all(false)?],
            "max_all" => vec![x.max_all()?],
            "min_all" => vec![x.min_all()?],
            "logsumexp_all" => vec![x.logsumexp_all()?],
            "argmax_all" => vec![x.argmax_all()?],
            "argmin_all" => vec![x.argmin_all()?],
            "sum_axes" => {
                let axes: Vec<isize> = case.i64s("axes")?.iter().map(|&a| a as isize).collect();
                vec![x.sum_axes(&axes, case.bool_or("keepdim", false)?)?]
            }
            _ => axis_op(case, x)?,
        })
    })
}

#[test]
fn reduce() {
    run_family("reduce", run);
}
