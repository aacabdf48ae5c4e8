//! Optimizers and gradient clipping against `tests/fixtures/optim.safetensors`: every
//! optimizer and flag, parameter groups, skipped gradients, learning rates changed between
//! steps, NaN and infinite gradients, refused options; `clip_grad_norm_` of orders 1, 2,
//! 3, 0.5 and inf with NaN / inf gradients and `error_if_nonfinite`, and
//! `clip_grad_value_`. Each step's parameters and optimizer state (PyTorch's
//! `state_dict()` keys and numbering across groups) are compared.

use cinder::nn::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, ParamGroup, RmsProp,
    RmsPropConfig, Sgd, SgdConfig, clip_grad_norm_with, clip_grad_value,
};
use cinder::{Error, Result, Tensor};
use serde_json::Value;

use crate::harness::{Case, Produced, dev, run_family, unknown};

fn bad(case: &Case, msg: String) -> Error {
    Error::invalid("conformance", format!("case {}: {msg}", case.name), &[])
}

fn num(case: &Case, v: &Value, key: &str) -> Result<f32> {
    v.as_f64()
        .map(|x| x as f32)
        .ok_or_else(|| bad(case, format!("{key} = {v} is not a number")))
}

fn flag(case: &Case, v: &Value, key: &str) -> Result<bool> {
    v.as_bool()
        .ok_or_else(|| bad(case, format!("{key} = {v} is not a bool")))
}

fn betas(case: &Case, v: &Value) -> Result<(f32, f32)> {
    match v.as_array().map(|a| a.as_slice()) {
        Some([a, b]) => Ok((num(case, a, "beta1")?, num(case, b, "beta2")?)),
        _ => Err(bad(case, format!("betas = {v} is not a pair"))),
    }
}

/// The hyperparameters of every group, PyTorch's names read into Cinder's config `C`
/// starting from its defaults (PyTorch's).
fn configs<C: Default>(
    case: &Case,
    set: impl Fn(&mut C, &str, &Value) -> Result<bool>,
) -> Result<Vec<C>> {
    let groups = case.arg("groups")?.as_array().cloned().unwrap_or_default();
    groups
        .iter()
        .map(|g| {
            let mut c = C::default();
            for (k, v) in g.as_object().into_iter().flatten() {
                if !set(&mut c, k, v)? {
                    return Err(bad(case, format!("unknown hyperparameter {k}")));
                }
            }
            Ok(c)
        })
        .collect()
}

fn sgd(c: &mut SgdConfig, k: &str, v: &Value, case: &Case) -> Result<bool> {
    match k {
        "lr" => c.lr = num(case, v, k)?,
        "momentum" => c.momentum = num(case, v, k)?,
        "dampening" => c.dampening = num(case, v, k)?,
        "weight_decay" => c.weight_decay = num(case, v, k)?,
        "nesterov" => c.nesterov = flag(case, v, k)?,
        "maximize" => c.maximize = flag(case, v, k)?,
        _ => return Ok(false),
    }
    Ok(true)
}

macro_rules! adam_like {
    ($name:ident, $cfg:ty) => {
        fn $name(c: &mut $cfg, k: &str, v: &Value, case: &Case) -> Result<bool> {
            match k {
                "lr" => c.lr = num(case, v, k)?,
                "betas" => c.betas = betas(case, v)?,
                "eps" => c.eps = num(case, v, k)?,
                "weight_decay" => c.weight_decay = num(case, v, k)?,
                "amsgrad" => c.amsgrad = flag(case, v, k)?,
                "maximize" => c.maximize = flag(case, v, k)?,
                _ => return Ok(false),
            }
            Ok(true)
        }
    };
}
adam_like!(adam, AdamConfig);
adam_like!(adamw, AdamWConfig);

fn rmsprop(c: &mut RmsPropConfig, k: &str, v: &Value, case: &Case) -> Result<bool> {
    match k {
        "lr" => c.lr = num(case, v, k)?,
        "alpha" => c.alpha = num(case, v, k)?,
        "eps" => c.eps = num(case, v, k)?,
        "weight_decay" => c.weight_decay = num(case, v, k)?,
        "momentum" => c.momentum = num(case, v, k)?,
        "centered" => c.centered = flag(case, v, k)?,
        "maximize" => c.maximize = flag(case, v, k)?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn adagrad(c: &mut AdagradConfig, k: &str, v: &Value, case: &Case) -> Result<bool> {
    match k {
        "lr" => c.lr = num(case, v, k)?,
        "lr_decay" => c.lr_decay = num(case, v, k)?,
        "weight_decay" => c.weight_decay = num(case, v, k)?,
        "initial_accumulator_value" => c.initial_accumulator_value = num(case, v, k)?,
        "eps" => c.eps = num(case, v, k)?,
        "maximize" => c.maximize = flag(case, v, k)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// The case's parameters (from `param{i}`, or zeros of `shapes` for an error case) split
/// into groups of `sizes`; with `duplicate`, every group takes the first parameters again.
fn groups<C>(case: &Case, params: &[Tensor], cfgs: Vec<C>) -> Result<Vec<ParamGroup<C>>> {
    let sizes = case.usizes("sizes")?;
    let dup = case.bool_or("duplicate", false)?;
    let mut at = 0;
    let mut out = Vec::new();
    for (n, cfg) in sizes.into_iter().zip(cfgs) {
        let start = if dup { 0 } else { at };
        let ps = params
            .get(start..start + n)
            .ok_or_else(|| bad(case, "sizes exceed the parameters".into()))?;
        out.push(ParamGroup::new(ps.to_vec(), cfg));
        at += n;
    }
    Ok(out)
}

fn shapes(case: &Case) -> Result<Vec<Vec<usize>>> {
    let v = case.arg("shapes")?;
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|s| {
                    s.as_array()?
                        .iter()
                        .map(|d| d.as_u64().map(|d| d as usize))
                        .collect::<Option<Vec<_>>>()
                })
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| bad(case, format!("shapes = {v} is not a list of shapes")))
}

fn zero_params(case: &Case) -> Result<Vec<Tensor>> {
    shapes(case)?
        .iter()
        .map(|s| Tensor::parameter(cinder::device::DeviceTensor::zeros(&dev(), s)?))
        .collect()
}

fn build(case: &Case, params: &[Tensor]) -> Result<Box<dyn Optimizer>> {
    Ok(match case.op.as_str() {
        "sgd" => Box::new(Sgd::with_groups(groups(
            case,
            params,
            configs(case, |c, k, v| sgd(c, k, v, case))?,
        )?)?),
        "adam" => Box::new(Adam::with_groups(groups(
            case,
            params,
            configs(case, |c, k, v| adam(c, k, v, case))?,
        )?)?),
        "adamw" => Box::new(AdamW::with_groups(groups(
            case,
            params,
            configs(case, |c, k, v| adamw(c, k, v, case))?,
        )?)?),
        "rmsprop" => Box::new(RmsProp::with_groups(groups(
            case,
            params,
            configs(case, |c, k, v| rmsprop(c, k, v, case))?,
        )?)?),
        "adagrad" => Box::new(Adagrad::with_groups(groups(
            case,
            params,
            configs(case, |c, k, v| adagrad(c, k, v, case))?,
        )?)?),
        _ => return Err(unknown(case)),
    })
}

fn run_optimizer(case: &Case) -> Result<Produced> {
    let n = shapes(case)?.len();
    let params = if case.has("param0") {
        (0..n)
            .map(|i| case.param(&format!("param{i}")))
            .collect::<Result<Vec<_>>>()?
    } else {
        zero_params(case)?
    };
    let mut opt = build(case, &params)?;
    let steps = case.usize("steps")?;
    let lrs: Option<Vec<Vec<f32>>> = match case.args.get("lrs") {
        None => None,
        Some(v) => Some(
            v.as_array()
                .into_iter()
                .flatten()
                .map(|row| {
                    row.as_array()
                        .into_iter()
                        .flatten()
                        .map(|x| num(case, x, "lrs"))
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    let mut out = Produced::new();
    for k in 0..steps {
        if let Some(lrs) = &lrs {
            for (g, &lr) in lrs[k].iter().enumerate() {
                opt.set_group_lr(g, lr)?;
            }
        }
        opt.zero_grad();
        for (i, p) in params.iter().enumerate() {
            let key = format!("grad{k}.{i}");
            if case.has(&key) {
                p.set_grad(Some(case.tensor(&key)?));
            }
        }
        opt.step()?;
        for (i, p) in params.iter().enumerate() {
            out.push((
                format!("expect.step{k}.param{i}"),
                Tensor::from_raw(p.raw().deep_clone()?),
            ));
        }
        for (name, t) in opt.state() {
            if name.starts_with("state.") {
                out.push((format!("expect.step{k}.{name}"), t));
            }
        }
    }
    for (name, t) in opt.state() {
        if name.starts_with("param_groups.") && (name.ends_with(".params") || name.ends_with(".lr"))
        {
            out.push((format!("expect.{name}"), t));
        }
    }
    Ok(out)
}

/// The case's parameters with the gradients `grad{i}` (absent: none).
fn with_grads(case: &Case) -> Result<Vec<Tensor>> {
    let params = zero_params(case)?;
    for (i, p) in params.iter().enumerate() {
        let key = format!("grad{i}");
        if case.has(&key) {
            p.set_grad(Some(case.tensor(&key)?));
        }
    }
    Ok(params)
}

fn grads_out(params: &[Tensor], out: &mut Produced) {
    for (i, p) in params.iter().enumerate() {
        if let Some(g) = p.grad() {
            out.push((format!("expect.grad{i}"), g));
        }
    }
}

fn run(case: &Case) -> Result<Produced> {
    match case.op.as_str() {
        "clip_grad_norm" => {
            let params = with_grads(case)?;
            let norm = clip_grad_norm_with(
                &params,
                case.f32("max_norm")?,
                case.f32("norm_type")?,
                case.bool_or("error_if_nonfinite", false)?,
            )?;
            let mut out = vec![("expect.norm".to_string(), norm)];
            grads_out(&params, &mut out);
            Ok(out)
        }
        "clip_grad_value" => {
            let params = with_grads(case)?;
            clip_grad_value(&params, case.f32("clip_value")?)?;
            let mut out = Vec::new();
            grads_out(&params, &mut out);
            Ok(out)
        }
        _ => run_optimizer(case),
    }
}

#[test]
fn optim() {
    run_family("optim", run);
}
