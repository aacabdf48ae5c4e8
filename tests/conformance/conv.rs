//! Convolutions against `tests/fixtures/conv.safetensors`: `conv2d` and `conv_transpose2d`
//! (groups, non-square strides, paddings, dilations and kernels, output padding, with and
//! without bias), and the `Conv2d` / `ConvTranspose2d` layers with their parameters loaded
//! from a PyTorch `state_dict` by name.

use cinder::device::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use cinder::nn::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Module, VarStore};
use cinder::{Result, Tensor};

use crate::harness::{Case, Produced, dev, run_family, unknown};

/// Argument `name` as an `(h, w)` pair, or `default` when absent.
fn pair_or(case: &Case, name: &str, default: (usize, usize)) -> Result<(usize, usize)> {
    if case.args.get(name).is_some() {
        case.pair(name)
    } else {
        Ok(default)
    }
}

fn conv_params(case: &Case) -> Result<Conv2dParams> {
    Ok(Conv2dParams {
        stride: pair_or(case, "stride", (1, 1))?,
        padding: pair_or(case, "padding", (0, 0))?,
        dilation: pair_or(case, "dilation", (1, 1))?,
        groups: case.usize("groups")?,
    })
}

fn convt_params(case: &Case) -> Result<ConvTranspose2dParams> {
    Ok(ConvTranspose2dParams {
        stride: pair_or(case, "stride", (1, 1))?,
        padding: pair_or(case, "padding", (0, 0))?,
        output_padding: pair_or(case, "output_padding", (0, 0))?,
        dilation: pair_or(case, "dilation", (1, 1))?,
        groups: case.usize("groups")?,
    })
}

/// A layer built with the case's options, its parameters loaded from the fixture's
/// `state.conv.*` tensors by name (strictly: every name must match), run forward and
/// backward through `sum(out * cot)`.
fn layer(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let path = vs.pp("conv");
    let (cin, cout) = (case.usize("in")?, case.usize("out")?);
    let k = case.pair("kernel")?;
    let bias = case.bool_or("bias", true)?;
    let groups = case.usize("groups")?;
    let module: Box<dyn Module> = if case.bool_or("transposed", false)? {
        let cfg = ConvTranspose2dConfig::default()
            .stride(pair_or(case, "stride", (1, 1))?)
            .padding(pair_or(case, "padding", (0, 0))?)
            .output_padding(pair_or(case, "output_padding", (0, 0))?)
            .dilation(pair_or(case, "dilation", (1, 1))?)
            .groups(groups)
            .bias(bias);
        Box::new(ConvTranspose2d::new(&path, cin, cout, k, cfg)?)
    } else {
        let cfg = Conv2dConfig::default()
            .stride(pair_or(case, "stride", (1, 1))?)
            .padding(pair_or(case, "padding", (0, 0))?)
            .dilation(pair_or(case, "dilation", (1, 1))?)
            .groups(groups)
            .bias(bias);
        Box::new(Conv2d::new(&path, cin, cout, k, cfg)?)
    };
    case.load_state(&vs)?;
    let x = case.param("x")?;
    let y = module.forward(&x)?;
    y.mul(&case.tensor("cot")?)?.sum_all()?.backward()?;
    let mut out = vec![
        ("expect.out".to_string(), y),
        ("expect.grad.x".to_string(), grad(&x)?),
    ];
    for (name, p) in vs.named_parameters() {
        let key = name.strip_prefix("conv.").unwrap_or(&name);
        out.push((format!("expect.grad.{key}"), grad(&p)?));
    }
    Ok(out)
}

fn grad(t: &Tensor) -> Result<Tensor> {
    match t.grad() {
        Some(g) => Ok(g),
        None => t.zeros_like(),
    }
}

fn run(case: &Case) -> Result<Produced> {
    match case.op.as_str() {
        "conv2d" => {
            let p = conv_params(case)?;
            case.op_outputs(|t| Ok(vec![t[0].conv2d(&t[1], t.get(2), &p)?]))
        }
        "conv_transpose2d" => {
            let p = convt_params(case)?;
            case.op_outputs(|t| Ok(vec![t[0].conv_transpose2d(&t[1], t.get(2), &p)?]))
        }
        "conv_layer" => layer(case),
        _ => Err(unknown(case)),
    }
}

#[test]
fn conv() {
    run_family("conv", run);
}
