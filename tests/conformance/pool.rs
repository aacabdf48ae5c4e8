//! Pooling against `tests/fixtures/pool.safetensors`: max pooling with indices (ceil mode,
//! padding, dilation, ties, NaN, +-inf), average pooling (count_include_pad,
//! divisor_override), adaptive average and max pooling to sizes that do not divide the
//! input or exceed it, and the pooling layers.

use cinder::device::ops::pool::Pool2dParams;
use cinder::nn::{AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d, Module};
use cinder::{Result, Tensor};
use serde_json::Value;

use crate::harness::{Case, Produced, run_family, unknown};

/// Argument `name` as an `(h, w)` pair, or `default` when absent.
fn pair_or(case: &Case, name: &str, default: (usize, usize)) -> Result<(usize, usize)> {
    if case.args.get(name).is_some() {
        case.pair(name)
    } else {
        Ok(default)
    }
}

fn pool_params(case: &Case) -> Result<Pool2dParams> {
    let kernel = case.pair("kernel")?;
    Ok(Pool2dParams {
        kernel,
        stride: pair_or(case, "stride", kernel)?,
        padding: pair_or(case, "padding", (0, 0))?,
        dilation: pair_or(case, "dilation", (1, 1))?,
        ceil_mode: case.bool_or("ceil_mode", false)?,
    })
}

fn divisor(case: &Case) -> Result<Option<usize>> {
    match case.args.get("divisor_override") {
        None | Some(Value::Null) => Ok(None),
        Some(_) => Ok(Some(case.usize("divisor_override")?)),
    }
}

/// An adaptive output size: an integer, or a pair whose entries may be null (keep the
/// input's size).
fn adaptive_output(case: &Case) -> Result<(Option<usize>, Option<usize>)> {
    let v = case.arg("output")?;
    if v.is_i64() {
        let k = case.usize("output")?;
        return Ok((Some(k), Some(k)));
    }
    let entry = |i: usize| v.get(i).and_then(Value::as_u64).map(|x| x as usize);
    Ok((entry(0), entry(1)))
}

fn fixed(out: (Option<usize>, Option<usize>), x: &Tensor) -> (usize, usize) {
    let s = x.shape();
    (out.0.unwrap_or(s[2]), out.1.unwrap_or(s[3]))
}

/// A pooling layer built from the case's options, run forward and backward through
/// `sum(out * cot)`.
fn layer(case: &Case) -> Result<Produced> {
    let x = case.param("x")?;
    let (y, idx) = match case.str("layer")? {
        "MaxPool2d" => {
            let p = pool_params(case)?;
            let l = MaxPool2d::new(p.kernel)
                .stride(p.stride)
                .padding(p.padding)
                .dilation(p.dilation)
                .ceil_mode(p.ceil_mode);
            if case.has("expect.indices") {
                let (y, i) = l.forward_with_indices(&x)?;
                (y, Some(i))
            } else {
                (l.forward(&x)?, None)
            }
        }
        "AvgPool2d" => {
            let p = pool_params(case)?;
            let l = AvgPool2d::new(p.kernel)
                .stride(p.stride)
                .padding(p.padding)
                .ceil_mode(p.ceil_mode)
                .count_include_pad(case.bool_or("count_include_pad", true)?)
                .divisor_override(divisor(case)?);
            (l.forward(&x)?, None)
        }
        "AdaptiveAvgPool2d" => {
            let (h, w) = adaptive_output(case)?;
            (AdaptiveAvgPool2d::with_sizes(h, w).forward(&x)?, None)
        }
        "AdaptiveMaxPool2d" => {
            let (h, w) = adaptive_output(case)?;
            let (y, i) = AdaptiveMaxPool2d::with_sizes(h, w).forward_with_indices(&x)?;
            (y, Some(i))
        }
        _ => return Err(unknown(case)),
    };
    y.mul(&case.tensor("cot")?)?.sum_all()?.backward()?;
    let gx = match x.grad() {
        Some(g) => g,
        None => x.zeros_like()?,
    };
    let mut out = vec![
        ("expect.out".to_string(), y),
        ("expect.grad.x".to_string(), gx),
    ];
    if let Some(i) = idx {
        out.push(("expect.indices".to_string(), i));
    }
    Ok(out)
}

fn run(case: &Case) -> Result<Produced> {
    match case.op.as_str() {
        "max_pool2d" => {
            let p = pool_params(case)?;
            case.op_outputs(|t| {
                let (y, i) = t[0].max_pool2d(&p)?;
                Ok(vec![y, i])
            })
        }
        "avg_pool2d" => {
            let p = pool_params(case)?;
            let cip = case.bool_or("count_include_pad", true)?;
            let d = divisor(case)?;
            case.op_outputs(|t| Ok(vec![t[0].avg_pool2d(&p, cip, d)?]))
        }
        "adaptive_avg_pool2d" => {
            let out = adaptive_output(case)?;
            case.op_outputs(|t| Ok(vec![t[0].adaptive_avg_pool2d(fixed(out, &t[0]))?]))
        }
        "adaptive_max_pool2d" => {
            let out = adaptive_output(case)?;
            case.op_outputs(|t| {
                let (y, i) = t[0].adaptive_max_pool2d(fixed(out, &t[0]))?;
                Ok(vec![y, i])
            })
        }
        "pool_layer" => layer(case),
        _ => Err(unknown(case)),
    }
}

#[test]
fn pool() {
    run_family("pool", run);
}
