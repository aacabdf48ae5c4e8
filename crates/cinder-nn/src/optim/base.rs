//! What the optimizers share: parameter groups, per-parameter state buffers with a host
//! step counter, and the state's export and import with PyTorch's names.

use std::collections::BTreeMap;
use std::ops::Range;

use cinder_autograd::Tensor;
use cinder_device::{DType, DeviceTensor, Error, Result};

use super::{GroupConfig, ParamGroup};

/// A hyperparameter's value as the state exports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HyperValue {
    /// A number (shape-`[]` f32 tensor).
    F32(f32),
    /// A flag (shape-`[]` u32 tensor, 0 or 1).
    Bool(bool),
    /// A pair such as Adam's betas (`[2]` f32 tensor).
    Pair(f32, f32),
}

/// The hyperparameter plumbing behind [`GroupConfig`] (sealed: implemented in this crate
/// only).
pub trait Hyper {
    /// Every hyperparameter but `lr`, by PyTorch's `param_groups` key.
    fn hypers(&self) -> Vec<(&'static str, HyperValue)>;
    /// Sets hyperparameter `key`; `false` when the key is unknown or the value's kind is not
    /// the key's.
    fn set_hyper(&mut self, key: &str, v: HyperValue) -> bool;
    /// `Err` naming `op` and the value when the constructor would refuse these options.
    fn validate(&self, op: &'static str) -> Result<()>;
    /// The state buffers a step with these options uses, in the order the kernel binds
    /// them.
    fn state_keys(&self) -> Vec<&'static str>;
    /// Sets the momentum-like coefficient (see `GroupConfig::momentum`) after checking
    /// it; `Err` for an optimizer without one.
    fn set_momentum(&mut self, op: &'static str, m: f32) -> Result<()>;
}

/// `Ok` when every `(name, value)` is finite and not negative, else `Err` naming it.
pub(crate) fn check_nonneg(op: &'static str, vals: &[(&str, f32)]) -> Result<()> {
    for (name, v) in vals {
        if !(v.is_finite() && *v >= 0.0) {
            return Err(Error::invalid(
                op,
                format!("{name} = {v} must be finite and >= 0"),
                &[],
            ));
        }
    }
    Ok(())
}

/// `Ok` when `v` is in `[0, 1)`, else `Err` naming it.
pub(crate) fn check_unit(op: &'static str, name: &str, v: f32) -> Result<()> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("{name} = {v} not in [0, 1)"),
            &[],
        ))
    }
}

/// One group: its parameters' index range, options and initial learning rate.
pub(crate) struct Group<C> {
    pub range: Range<usize>,
    pub cfg: C,
    pub initial_lr: f32,
}

/// A parameter's state: steps taken and buffers by key.
#[derive(Clone)]
struct ParamState {
    steps: u64,
    bufs: BTreeMap<&'static str, DeviceTensor>,
}

/// What a step of one parameter works with, from [`Core::prepare`].
pub(crate) struct Prepared {
    /// The 1-based number of the step being taken.
    pub t: u64,
    /// No state yet: the buffers are fresh and unread (the kernel's first-step flag).
    pub fresh: bool,
    /// The buffers of the keys asked for, in that order.
    pub bufs: Vec<DeviceTensor>,
}

/// The shared body of every optimizer.
pub(crate) struct Core<C> {
    pub op: &'static str,
    pub params: Vec<Tensor>,
    pub groups: Vec<Group<C>>,
    /// Whether `state.i.step` is part of the exported state (all but SGD).
    has_step: bool,
    /// Every state key this optimizer knows, in PyTorch's order.
    all_keys: &'static [&'static str],
    /// `Some` once parameter `i` has taken a step (or was loaded).
    per_param: Vec<Option<ParamState>>,
}

impl<C: GroupConfig> Core<C> {
    /// Checks every group's options and the parameters (`f32`, none given twice, at least
    /// one group).
    pub fn new(
        op: &'static str,
        groups: Vec<ParamGroup<C>>,
        has_step: bool,
        all_keys: &'static [&'static str],
    ) -> Result<Core<C>> {
        if groups.is_empty() {
            return Err(Error::invalid(op, "no parameter group", &[]));
        }
        let mut params = Vec::new();
        let mut gs = Vec::with_capacity(groups.len());
        for (gi, g) in groups.into_iter().enumerate() {
            g.cfg.validate(op).map_err(|e| in_group(op, gi, e))?;
            check_nonneg(op, &[("lr", g.cfg.lr())]).map_err(|e| in_group(op, gi, e))?;
            let start = params.len();
            for p in g.params {
                p.raw().expect_dtype(op, DType::F32)?;
                if let Some(j) = params.iter().position(|q: &Tensor| q.same(&p)) {
                    return Err(Error::invalid(
                        op,
                        format!(
                            "parameter {} (group {gi}) is parameter {j} again: a parameter \
                             appears once in one group",
                            params.len()
                        ),
                        &p.shape(),
                    ));
                }
                params.push(p);
            }
            gs.push(Group {
                range: start..params.len(),
                initial_lr: g.cfg.lr(),
                cfg: g.cfg,
            });
        }
        let n = params.len();
        Ok(Core {
            op,
            params,
            groups: gs,
            has_step,
            all_keys,
            per_param: vec![None; n],
        })
    }

    pub fn group_parameters(&self, group: usize) -> Option<&[Tensor]> {
        self.groups
            .get(group)
            .map(|g| &self.params[g.range.clone()])
    }

    fn group_index(&self, group: usize) -> Result<usize> {
        if group < self.groups.len() {
            Ok(group)
        } else {
            Err(Error::invalid(
                self.op,
                format!("group {group} out of range ({} groups)", self.groups.len()),
                &[],
            ))
        }
    }

    pub fn set_group_lr(&mut self, group: usize, lr: f32) -> Result<()> {
        let g = self.group_index(group)?;
        self.groups[g].cfg.set_lr(lr);
        Ok(())
    }

    pub fn set_group_momentum(&mut self, group: usize, m: f32) -> Result<()> {
        let g = self.group_index(group)?;
        let mut cfg = self.groups[g].cfg;
        cfg.set_momentum(self.op, m)?;
        self.groups[g].cfg = cfg;
        Ok(())
    }

    pub fn set_group_config(&mut self, group: usize, cfg: C) -> Result<()> {
        let g = self.group_index(group)?;
        cfg.validate(self.op)?;
        check_nonneg(self.op, &[("lr", cfg.lr())])?;
        self.groups[g].cfg = cfg;
        Ok(())
    }

    /// The number of the step parameter `i` is about to take and its buffers for `keys`:
    /// fresh unread buffers before its first step, else the existing ones, with a zero
    /// buffer for a key the state does not have yet (an option switched on later).
    /// Commit with [`Core::commit`].
    pub fn prepare(
        &self,
        i: usize,
        param: &DeviceTensor,
        keys: &[&'static str],
    ) -> Result<Prepared> {
        match &self.per_param[i] {
            None => {
                let bufs = keys
                    .iter()
                    .map(|_| DeviceTensor::uninit(param.device(), param.shape(), DType::F32))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Prepared {
                    t: 1,
                    fresh: true,
                    bufs,
                })
            }
            Some(s) => {
                let bufs = keys
                    .iter()
                    .map(|k| match s.bufs.get(k) {
                        Some(b) => Ok(b.clone()),
                        None => DeviceTensor::zeros(param.device(), param.shape()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Prepared {
                    t: s.steps + 1,
                    fresh: false,
                    bufs,
                })
            }
        }
    }

    /// Records that parameter `i` took step `prep.t` with the buffers of `keys`. A
    /// parameter without buffers and without a step count (SGD without momentum) keeps no
    /// state.
    pub fn commit(&mut self, i: usize, prep: Prepared, keys: &[&'static str]) {
        if keys.is_empty() && !self.has_step && self.per_param[i].is_none() {
            return;
        }
        let s = self.per_param[i].get_or_insert_with(|| ParamState {
            steps: 0,
            bufs: BTreeMap::new(),
        });
        s.steps = prep.t;
        for (k, b) in keys.iter().zip(prep.bufs) {
            s.bufs.insert(k, b);
        }
    }

    pub fn export(&self) -> Vec<(String, DeviceTensor)> {
        let mut out = Vec::new();
        let Some(first) = self.params.first() else {
            return self.export_groups(None);
        };
        let device = first.device();
        for (i, s) in self.per_param.iter().enumerate() {
            let Some(s) = s else { continue };
            if self.has_step
                && let Ok(st) = DeviceTensor::scalar(&device, s.steps as f32)
            {
                out.push((format!("state.{i}.step"), st));
            }
            for key in self.all_keys {
                let Some(b) = s.bufs.get(key) else { continue };
                // Should the copy fail (out of memory), the live buffer is handed out
                // instead: same contents now, but later steps would change it.
                let c = b.deep_clone().unwrap_or_else(|_| b.clone());
                out.push((format!("state.{i}.{key}"), c));
            }
        }
        out.extend(self.export_groups(Some(&device)));
        out
    }

    fn export_groups(&self, device: Option<&cinder_device::Device>) -> Vec<(String, DeviceTensor)> {
        let device = match device {
            Some(d) => d.clone(),
            None => match cinder_device::Device::default() {
                Ok(d) => d,
                Err(_) => return Vec::new(),
            },
        };
        let mut out = Vec::new();
        for (gi, g) in self.groups.iter().enumerate() {
            let idx: Vec<u32> = g.range.clone().map(|i| i as u32).collect();
            let mut entries: Vec<(&str, Result<DeviceTensor>)> = vec![
                (
                    "params",
                    DeviceTensor::from_slice(&device, &idx, &[idx.len()]),
                ),
                ("lr", DeviceTensor::scalar(&device, g.cfg.lr())),
                ("initial_lr", DeviceTensor::scalar(&device, g.initial_lr)),
            ];
            for (k, v) in g.cfg.hypers() {
                let t = match v {
                    HyperValue::F32(x) => DeviceTensor::scalar(&device, x),
                    HyperValue::Bool(b) => DeviceTensor::from_slice(&device, &[b as u32], &[]),
                    HyperValue::Pair(a, b) => DeviceTensor::from_slice(&device, &[a, b], &[2]),
                };
                entries.push((k, t));
            }
            for (k, t) in entries {
                if let Ok(t) = t {
                    out.push((format!("param_groups.{gi}.{k}"), t));
                }
            }
        }
        out
    }

    pub fn import(&mut self, state: &[(String, DeviceTensor)]) -> Result<()> {
        let op = self.op;
        let n = self.params.len();
        let ng = self.groups.len();
        let mut cfgs: Vec<(C, f32)> = self.groups.iter().map(|g| (g.cfg, g.initial_lr)).collect();
        let mut steps: Vec<Option<u64>> = vec![None; n];
        let mut found: Vec<BTreeMap<&'static str, DeviceTensor>> = vec![BTreeMap::new(); n];
        let mut seen_groups = std::collections::BTreeSet::new();
        for (name, t) in state {
            let bad =
                |msg: &str| Error::invalid(op, format!("state entry {name:?}: {msg}"), t.shape());
            if let Some(rest) = name.strip_prefix("param_groups.") {
                let (idx, key) = rest
                    .split_once('.')
                    .ok_or_else(|| bad("expected param_groups.<index>.<key>"))?;
                let g: usize = idx
                    .parse()
                    .map_err(|_| bad("group index is not a number"))?;
                if g >= ng {
                    return Err(bad(&format!("group index out of range ({ng} groups)")));
                }
                if !seen_groups.insert(name.as_str()) {
                    return Err(bad("given twice"));
                }
                match key {
                    "params" => {
                        let want: Vec<u32> =
                            self.groups[g].range.clone().map(|i| i as u32).collect();
                        let got = if t.dtype() == DType::U32 && t.shape().len() == 1 {
                            t.to_vec::<u32>()?
                        } else {
                            return Err(bad("params must be a 1-D u32 tensor"));
                        };
                        if got != want {
                            return Err(bad(&format!(
                                "the group holds parameters {got:?} in the checkpoint but \
                                 {want:?} in this optimizer"
                            )));
                        }
                    }
                    "lr" => cfgs[g].0.set_lr(read_f32(t).map_err(|m| bad(&m))?),
                    "initial_lr" => {
                        let v = read_f32(t).map_err(|m| bad(&m))?;
                        check_nonneg(op, &[("initial_lr", v)]).map_err(|e| in_group(op, g, e))?;
                        cfgs[g].1 = v;
                    }
                    _ => {
                        let v = read_hyper(t).map_err(|m| bad(&m))?;
                        if !cfgs[g].0.set_hyper(key, v) {
                            let known: Vec<&str> =
                                cfgs[g].0.hypers().iter().map(|(k, _)| *k).collect();
                            return Err(bad(&format!(
                                "unknown hyperparameter or wrong kind of value (this \
                                 optimizer has lr, initial_lr, params, {known:?})"
                            )));
                        }
                    }
                }
                continue;
            }
            let rest = name
                .strip_prefix("state.")
                .ok_or_else(|| bad("name does not start with \"state.\" or \"param_groups.\""))?;
            let (idx, key) = rest
                .split_once('.')
                .ok_or_else(|| bad("expected state.<index>.<key>"))?;
            let i: usize = idx
                .parse()
                .map_err(|_| bad("parameter index is not a number"))?;
            if i >= n {
                return Err(bad(&format!(
                    "parameter index out of range ({n} parameters)"
                )));
            }
            t.expect_dtype(op, DType::F32)?;
            if key == "step" && self.has_step {
                if t.numel() != 1 {
                    return Err(bad("step must have one element"));
                }
                let v = t.to_scalar()?;
                if !(v.is_finite() && v >= 1.0 && v.fract() == 0.0) {
                    return Err(bad(&format!("step {v} is not a positive integer")));
                }
                if steps[i].replace(v as u64).is_some() {
                    return Err(bad("given twice"));
                }
                continue;
            }
            let k = self.all_keys.iter().find(|&&s| s == key).ok_or_else(|| {
                bad(&format!(
                    "unknown key (this optimizer has {:?})",
                    self.all_keys
                ))
            })?;
            let want = self.params[i].shape();
            if t.shape() != want.as_slice() {
                return Err(Error::shapes(op, &want, t.shape()));
            }
            if found[i].insert(k, t.clone()).is_some() {
                return Err(bad("given twice"));
            }
        }
        for (g, (cfg, _)) in cfgs.iter().enumerate() {
            cfg.validate(op).map_err(|e| in_group(op, g, e))?;
            check_nonneg(op, &[("lr", cfg.lr())]).map_err(|e| in_group(op, g, e))?;
        }
        let mut per_param = Vec::with_capacity(n);
        for (gi, g) in self.groups.iter().enumerate() {
            let keys = cfgs[gi].0.state_keys();
            for i in g.range.clone() {
                let any = !found[i].is_empty() || steps[i].is_some();
                if !any {
                    per_param.push(None);
                    continue;
                }
                let missing = |what: String| {
                    Error::invalid(
                        op,
                        format!("state of parameter {i}: missing {what}"),
                        &self.params[i].shape(),
                    )
                };
                if let Some(k) = keys.iter().find(|k| !found[i].contains_key(*k)) {
                    return Err(missing(format!("state.{i}.{k}")));
                }
                let t = if self.has_step {
                    steps[i].ok_or_else(|| missing(format!("state.{i}.step")))?
                } else {
                    1
                };
                let mut bufs = BTreeMap::new();
                for (k, b) in &found[i] {
                    bufs.insert(*k, b.deep_clone()?);
                }
                if bufs.is_empty() && !self.has_step {
                    per_param.push(None);
                    continue;
                }
                per_param.push(Some(ParamState { steps: t, bufs }));
            }
        }
        for (g, (cfg, initial)) in self.groups.iter_mut().zip(cfgs) {
            g.cfg = cfg;
            g.initial_lr = initial;
        }
        self.per_param = per_param;
        Ok(())
    }
}

/// Prefixes an error's message with the group it is about.
fn in_group(op: &'static str, group: usize, e: Error) -> Error {
    match e {
        Error::InvalidArgument { msg, shape, .. } => {
            Error::invalid(op, format!("group {group}: {msg}"), &shape)
        }
        e => e,
    }
}

fn read_f32(t: &DeviceTensor) -> std::result::Result<f32, String> {
    if t.dtype() != DType::F32 || !t.shape().is_empty() {
        return Err("expected a shape-[] f32 tensor".into());
    }
    t.to_scalar().map_err(|e| e.to_string())
}

fn read_hyper(t: &DeviceTensor) -> std::result::Result<HyperValue, String> {
    match (t.dtype(), t.shape()) {
        (DType::F32, []) => Ok(HyperValue::F32(t.to_scalar().map_err(|e| e.to_string())?)),
        (DType::F32, [2]) => {
            let v = t.to_vec::<f32>().map_err(|e| e.to_string())?;
            Ok(HyperValue::Pair(v[0], v[1]))
        }
        (DType::U32, []) => match t.to_vec::<u32>().map_err(|e| e.to_string())?[0] {
            0 => Ok(HyperValue::Bool(false)),
            1 => Ok(HyperValue::Bool(true)),
            v => Err(format!("flag {v} is neither 0 nor 1")),
        },
        _ => Err("expected a shape-[] f32, a [2] f32 or a shape-[] u32 tensor".into()),
    }
}
