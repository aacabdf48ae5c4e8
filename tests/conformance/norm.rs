//! Normalization layers against `tests/fixtures/norm.safetensors`: the functional forms
//! (forward and gradients of input, weight, bias), and the modules built with PyTorch's
//! defaults, loading the PyTorch module's `state_dict` strictly by name; BatchNorm over
//! several training steps (outputs, gradients, running statistics, `num_batches_tracked`)
//! and in evaluation mode.

use cinder::nn::{
    BatchNorm, BatchNormConfig, GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig, ModuleT,
    RmsNorm, RmsNormConfig, VarStore, group_norm, layer_norm, rms_norm,
};
use cinder::{Result, Tensor};

use crate::harness::{Case, Produced, dev, run_family, unknown};

/// The op input `name`, if the case has it.
fn input<'a>(case: &Case, x: &'a [Tensor], name: &str) -> Option<&'a Tensor> {
    case.input_names()
        .iter()
        .position(|n| n == name)
        .map(|i| &x[i])
}

fn op_case(case: &Case) -> Result<Produced> {
    case.op_outputs(|x| {
        let (w, b) = (input(case, x, "weight"), input(case, x, "bias"));
        Ok(vec![match case.op.as_str() {
            "layer_norm" => layer_norm(
                &x[0],
                &case.usizes("normalized_shape")?,
                w,
                b,
                case.f32("eps")?,
            )?,
            "group_norm" => group_norm(&x[0], case.usize("num_groups")?, w, b, case.f32("eps")?)?,
            "rms_norm" => {
                let eps = case.args.get("eps").map(|_| case.f32("eps")).transpose()?;
                rms_norm(&x[0], &case.usizes("normalized_shape")?, w, eps)?
            }
            "batch_norm" => {
                let running = input(case, x, "running_mean").zip(input(case, x, "running_var"));
                if case.bool_or("training", true)? != running.is_none() {
                    return Err(unknown(case));
                }
                x[0].batch_norm(running, w, b, case.f32("eps")?)?.0
            }
            _ => return Err(unknown(case)),
        }])
    })
}

/// Forward `x` (a parameter) through `m`, backward `sum(out * cot)`; the output, the input
/// gradient and each named parameter's gradient under `expect.*` keys with `suffix`.
fn forward_backward(
    m: &dyn ModuleT,
    train: bool,
    x: &Tensor,
    cot: &Tensor,
    params: &[(&str, &Option<Tensor>)],
    suffix: &str,
) -> Result<Produced> {
    for (_, p) in params {
        if let Some(p) = p {
            p.zero_grad();
        }
    }
    let out = m.forward_t(x, train)?;
    out.mul(cot)?.sum_all()?.backward()?;
    let mut got = vec![
        (format!("expect.out{suffix}"), out),
        (
            format!("expect.grad.x{suffix}"),
            x.grad().expect("x requires grad"),
        ),
    ];
    for (name, p) in params {
        if let Some(p) = p {
            got.push((
                format!("expect.grad.{name}{suffix}"),
                p.grad().expect("a gradient"),
            ));
        }
    }
    Ok(got)
}

fn module_case(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let path = vs.pp("m");
    let (m, params): (Box<dyn ModuleT>, [Option<Tensor>; 2]) = match case.op.as_str() {
        "LayerNorm" => {
            let cfg = LayerNormConfig {
                elementwise_affine: case.bool_or("elementwise_affine", true)?,
                bias: case.bool_or("bias", true)?,
                ..Default::default()
            };
            let l = LayerNorm::new(&path, &case.usizes("normalized_shape")?, cfg)?;
            let p = [l.weight.clone(), l.bias.clone()];
            (Box::new(l), p)
        }
        "GroupNorm" => {
            let cfg = GroupNormConfig {
                affine: case.bool_or("affine", true)?,
                ..Default::default()
            };
            let l = GroupNorm::new(
                &path,
                case.usize("num_groups")?,
                case.usize("num_channels")?,
                cfg,
            )?;
            let p = [l.weight.clone(), l.bias.clone()];
            (Box::new(l), p)
        }
        "RMSNorm" => {
            let cfg = RmsNormConfig {
                eps: case.args.get("eps").map(|_| case.f32("eps")).transpose()?,
                elementwise_affine: case.bool_or("elementwise_affine", true)?,
            };
            let l = RmsNorm::new(&path, &case.usizes("normalized_shape")?, cfg)?;
            let p = [l.weight.clone(), None];
            (Box::new(l), p)
        }
        _ => return Err(unknown(case)),
    };
    case.load_state(&vs)?;
    forward_backward(
        m.as_ref(),
        true,
        &case.param("x")?,
        &case.tensor("cot")?,
        &[("weight", &params[0]), ("bias", &params[1])],
        "",
    )
}

fn batch_norm_case(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let momentum = match case.args.get("momentum") {
        Some(v) if v.is_null() => None,
        _ => Some(case.f32("momentum")?),
    };
    let cfg = BatchNormConfig {
        eps: case.f32("eps")?,
        momentum,
        affine: case.bool_or("affine", true)?,
        track_running_stats: case.bool_or("track_running_stats", true)?,
    };
    let c = case.usize("channels")?;
    let bn = match case.str("kind")? {
        "1d" => BatchNorm::new_1d(&vs.pp("bn"), c, cfg)?,
        _ => BatchNorm::new_2d(&vs.pp("bn"), c, cfg)?,
    };
    case.load_state(&vs)?;
    let mut got = Vec::new();
    for i in 0..case.usize("steps")? {
        got.extend(forward_backward(
            &bn,
            true,
            &case.param(&format!("x{i}"))?,
            &case.tensor(&format!("cot{i}"))?,
            &[("weight", &bn.weight), ("bias", &bn.bias)],
            &i.to_string(),
        )?);
    }
    for (name, t) in vs.named_buffers() {
        got.push((format!("expect.state.{name}"), t));
    }
    got.push((
        "expect.out_eval".into(),
        bn.forward_t(&case.tensor("x_eval")?, false)?,
    ));
    Ok(got)
}

fn run(case: &Case) -> Result<Produced> {
    match case.op.as_str() {
        "batch_norm" | "layer_norm" | "group_norm" | "rms_norm" => op_case(case),
        "LayerNorm" | "GroupNorm" | "RMSNorm" => module_case(case),
        "BatchNorm" => batch_norm_case(case),
        _ => Err(unknown(case)),
    }
}

#[test]
fn norm() {
    run_family("norm", run);
}
