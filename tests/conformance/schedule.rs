//! LR schedules against `tests/fixtures/schedule.safetensors`: every group's learning rate
//! after construction and after each step (from the group's own base rate), OneCycleLR's
//! momentum / beta1, ReduceLROnPlateau's rates after each metric, and the options PyTorch
//! refuses.

use cinder::device::DeviceTensor;
use cinder::nn::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, Optimizer, ParamGroup, Sgd, SgdConfig,
};
use cinder::nn::schedule::{
    Anneal, CosineAnnealingLr, CosineAnnealingWarmRestarts, ExponentialLr, LinearWarmup,
    LrScheduler, MultiStepLr, OneCycleConfig, OneCycleLr, PlateauConfig, PlateauMode, PolynomialLr,
    ReduceLrOnPlateau, StepLr, ThresholdMode,
};
use cinder::{Error, Result, Tensor};
use serde_json::Value;

use crate::harness::{Case, Produced, constant, dev};

fn bad(case: &Case, msg: String) -> Error {
    Error::invalid("conformance", format!("case {}: {msg}", case.name), &[])
}

/// Reads the options of one schedule (a JSON object).
struct Opts<'a> {
    case: &'a Case,
    v: &'a Value,
}

impl Opts<'_> {
    fn get(&self, k: &str) -> Option<&Value> {
        self.v.get(k)
    }
    fn f64_or(&self, k: &str, d: f64) -> Result<f64> {
        match self.get(k) {
            None => Ok(d),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| bad(self.case, format!("{k} = {v} is not a number"))),
        }
    }
    fn f32_or(&self, k: &str, d: f32) -> Result<f32> {
        Ok(self.f64_or(k, d as f64)? as f32)
    }
    fn usize_or(&self, k: &str, d: usize) -> Result<usize> {
        match self.get(k) {
            None => Ok(d),
            Some(v) => v
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| bad(self.case, format!("{k} = {v} is not a count"))),
        }
    }
    fn usize(&self, k: &str) -> Result<usize> {
        self.get(k)
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .ok_or_else(|| bad(self.case, format!("no count {k}")))
    }
    fn bool_or(&self, k: &str, d: bool) -> Result<bool> {
        match self.get(k) {
            None => Ok(d),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| bad(self.case, format!("{k} = {v} is not a bool"))),
        }
    }
    fn str_or<'b>(&'b self, k: &str, d: &'b str) -> Result<&'b str> {
        match self.get(k) {
            None => Ok(d),
            Some(v) => v
                .as_str()
                .ok_or_else(|| bad(self.case, format!("{k} = {v} is not a string"))),
        }
    }
    /// A number or a list of numbers.
    fn list_or(&self, k: &str, d: f32) -> Result<Vec<f32>> {
        match self.get(k) {
            None => Ok(vec![d]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_f64()
                        .map(|x| x as f32)
                        .ok_or_else(|| bad(self.case, format!("{k}: {x} is not a number")))
                })
                .collect(),
            Some(v) => Ok(vec![
                v.as_f64()
                    .ok_or_else(|| bad(self.case, format!("{k} = {v} is not a number")))?
                    as f32,
            ]),
        }
    }
}

fn build_schedule(case: &Case, v: &Value) -> Result<Box<dyn LrScheduler + Send>> {
    let o = Opts { case, v };
    let kind = o.str_or("kind", "")?;
    Ok(match kind {
        "step" => Box::new(StepLr::new(o.usize("step_size")?, o.f64_or("gamma", 0.1)?)?),
        "multistep" => {
            let ms: Vec<usize> = o
                .get("milestones")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_u64())
                        .map(|m| m as usize)
                        .collect()
                })
                .unwrap_or_default();
            Box::new(MultiStepLr::new(&ms, o.f64_or("gamma", 0.1)?)?)
        }
        "exponential" => Box::new(ExponentialLr::new(o.f64_or("gamma", f64::NAN)?)?),
        "cosine" => Box::new(CosineAnnealingLr::new(
            o.usize("t_max")?,
            o.f32_or("eta_min", 0.0)?,
        )?),
        "warm_restarts" => Box::new(CosineAnnealingWarmRestarts::new(
            o.usize("t_0")?,
            o.usize_or("t_mult", 1)?,
            o.f32_or("eta_min", 0.0)?,
        )?),
        "polynomial" => Box::new(PolynomialLr::new(
            o.usize_or("total_iters", 5)?,
            o.f64_or("power", 1.0)?,
        )?),
        "linear" => Box::new(LinearWarmup::linear(
            o.f64_or("start_factor", 1.0 / 3.0)?,
            o.f64_or("end_factor", 1.0)?,
            o.usize_or("total_iters", 5)?,
        )?),
        "sequential" => {
            let inner = build_schedule(case, o.get("inner").unwrap_or(&Value::Null))?;
            Box::new(LinearWarmup::then(
                inner,
                o.f64_or("start_factor", 1.0 / 3.0)?,
                o.usize("warmup")?,
            )?)
        }
        "one_cycle" => {
            let cfg = OneCycleConfig {
                pct_start: o.f64_or("pct_start", 0.3)?,
                anneal_strategy: match o.str_or("anneal_strategy", "cos")? {
                    "cos" => Anneal::Cos,
                    "linear" => Anneal::Linear,
                    s => return Err(bad(case, format!("anneal_strategy {s}"))),
                },
                cycle_momentum: o.bool_or("cycle_momentum", true)?,
                base_momentum: o.list_or("base_momentum", 0.85)?,
                max_momentum: o.list_or("max_momentum", 0.95)?,
                div_factor: o.f64_or("div_factor", 25.0)?,
                final_div_factor: o.f64_or("final_div_factor", 1e4)?,
                three_phase: o.bool_or("three_phase", false)?,
            };
            let max_lr = o.list_or("max_lr", f32::NAN)?;
            if o.get("total_steps").is_some() {
                Box::new(OneCycleLr::new(&max_lr, o.usize("total_steps")?, cfg)?)
            } else {
                Box::new(OneCycleLr::with_epochs(
                    &max_lr,
                    o.usize("epochs")?,
                    o.usize("steps_per_epoch")?,
                    cfg,
                )?)
            }
        }
        _ => return Err(bad(case, format!("unknown schedule kind {kind:?}"))),
    })
}

fn plateau(case: &Case, v: &Value) -> Result<ReduceLrOnPlateau> {
    let o = Opts { case, v };
    let min_lr = o.list_or("min_lr", 0.0)?;
    let list = matches!(o.get("min_lr"), Some(Value::Array(_)));
    let cfg = PlateauConfig {
        mode: match o.str_or("mode", "min")? {
            "min" => PlateauMode::Min,
            "max" => PlateauMode::Max,
            s => return Err(bad(case, format!("mode {s}"))),
        },
        factor: o.f32_or("factor", 0.1)?,
        patience: o.usize_or("patience", 10)?,
        threshold: o.f32_or("threshold", 1e-4)?,
        threshold_mode: match o.str_or("threshold_mode", "rel")? {
            "rel" => ThresholdMode::Rel,
            "abs" => ThresholdMode::Abs,
            s => return Err(bad(case, format!("threshold_mode {s}"))),
        },
        cooldown: o.usize_or("cooldown", 0)?,
        min_lr: if list { 0.0 } else { min_lr[0] },
        eps: o.f32_or("eps", 1e-8)?,
    };
    let s = ReduceLrOnPlateau::new(cfg)?;
    if list { s.with_min_lrs(min_lr) } else { Ok(s) }
}

/// An optimizer with one group per base rate (one scalar parameter each), as the fixture
/// builds it.
fn optimizer(case: &Case, lrs: &[f32]) -> Result<Box<dyn Optimizer>> {
    let p = || Tensor::parameter(DeviceTensor::zeros(&dev(), &[1])?);
    let momentum = case.f32_or("momentum", 0.9)?;
    Ok(match case.str("optimizer")? {
        "sgd" => Box::new(Sgd::with_groups(
            lrs.iter()
                .map(|&lr| {
                    Ok(ParamGroup::new(
                        vec![p()?],
                        SgdConfig {
                            lr,
                            momentum,
                            ..Default::default()
                        },
                    ))
                })
                .collect::<Result<Vec<_>>>()?,
        )?),
        "adam" => Box::new(Adam::with_groups(
            lrs.iter()
                .map(|&lr| {
                    Ok(ParamGroup::new(
                        vec![p()?],
                        AdamConfig {
                            lr,
                            ..Default::default()
                        },
                    ))
                })
                .collect::<Result<Vec<_>>>()?,
        )?),
        "adagrad" => Box::new(Adagrad::with_groups(
            lrs.iter()
                .map(|&lr| {
                    Ok(ParamGroup::new(
                        vec![p()?],
                        AdagradConfig {
                            lr,
                            ..Default::default()
                        },
                    ))
                })
                .collect::<Result<Vec<_>>>()?,
        )?),
        o => return Err(bad(case, format!("unknown optimizer {o}"))),
    })
}

fn table(rows: &[Vec<f32>]) -> Result<Tensor> {
    let cols = rows.first().map_or(0, Vec::len);
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    constant(&flat, &[rows.len(), cols])
}

fn run(case: &Case) -> Result<Produced> {
    let lrs: Vec<f32> = case
        .arg("lrs")?
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect()
        })
        .unwrap_or_default();
    let mut opt = optimizer(case, &lrs)?;
    let spec = case.arg("schedule")?;
    let moms = |opt: &dyn Optimizer| -> Vec<f32> {
        (0..opt.num_groups())
            .map(|g| opt.momentum(g).unwrap_or(f32::NAN))
            .collect()
    };
    if case.op == "plateau" {
        let mut s = plateau(case, spec)?;
        let mut rows = Vec::new();
        for m in case.values("metrics")? {
            s.step_optimizer_with(opt.as_mut(), m)?;
            rows.push(opt.lrs());
        }
        return Ok(vec![("expect.lr".to_string(), table(&rows)?)]);
    }
    let mut s = build_schedule(case, spec)?;
    s.apply(opt.as_mut())?;
    let mut rows = vec![opt.lrs()];
    let mut mrows = vec![moms(opt.as_ref())];
    for _ in 0..case.usize("steps")? {
        s.step_optimizer(opt.as_mut())?;
        rows.push(opt.lrs());
        mrows.push(moms(opt.as_ref()));
    }
    let mut out = vec![("expect.lr".to_string(), table(&rows)?)];
    if case.has("expect.momentum") {
        out.push(("expect.momentum".to_string(), table(&mrows)?));
    }
    Ok(out)
}

#[test]
fn schedule() {
    crate::harness::run_family("schedule", run);
}
