//! Optimizers with PyTorch's update rules, each parameter updated by one fused WGSL kernel
//! per step (see `shaders/optim.wgsl`), and gradient clipping.
//!
//! | Cinder | PyTorch |
//! |---|---|
//! | [`Sgd`] | `torch.optim.SGD` |
//! | [`Adam`] | `torch.optim.Adam` |
//! | [`Adam::adamw`] / [`AdamW`] | `torch.optim.AdamW` |
//! | [`RmsProp`] | `torch.optim.RMSprop` |
//! | [`Adagrad`] | `torch.optim.Adagrad` |
//! | [`clip_grad_norm`] | `torch.nn.utils.clip_grad_norm_` (L2) |
//! | [`clip_grad_value`] | `torch.nn.utils.clip_grad_value_` |
//!
//! ```no_run
//! # use cinder_nn::{VarStore, Init, optim::{Adam, AdamConfig, Optimizer}};
//! # fn f(vs: &VarStore, loss: &cinder_autograd::Tensor) -> cinder_device::Result<()> {
//! let mut opt = Adam::new(vs.parameters(), AdamConfig { lr: 1e-3, ..Default::default() })?;
//! opt.zero_grad();
//! loss.backward()?;
//! opt.step()?;
//! # Ok(()) }
//! ```

/// The [`Optimizer`] methods every optimizer here implements the same way, from its `cfg.lr`,
/// `params` and `slots` fields.
macro_rules! common_optimizer_methods {
    () => {
        fn lr(&self) -> f32 {
            self.cfg.lr
        }

        fn set_lr(&mut self, lr: f32) {
            self.cfg.lr = lr;
        }

        fn parameters(&self) -> &[Tensor] {
            &self.params
        }

        fn state(&self) -> Vec<(String, DeviceTensor)> {
            self.slots.export()
        }

        fn load_state(&mut self, state: &[(String, DeviceTensor)]) -> Result<()> {
            self.slots.import(&self.params, state)
        }
    };
}

mod adagrad;
mod adam;
mod rmsprop;
mod sgd;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig, AdamW};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};

use cinder_autograd::Tensor;
use cinder_device::{DType, Device, DeviceTensor, Error, Result};

/// What every optimizer offers: a step over the parameters' gradients, clearing them, the
/// learning rate (for schedules), and its state as named tensors (for checkpoints).
pub trait Optimizer {
    /// Updates every parameter that has a gradient (`.grad()` is `Some`) with one fused
    /// kernel dispatch each; parameters without a gradient are skipped and keep their step
    /// count, as in PyTorch. Nothing is read back. Returns `Err` when a gradient's shape or
    /// dtype differs from its parameter's, a gradient shares the parameter's buffer, or the
    /// learning rate set by [`Optimizer::set_lr`] is negative or not finite; parameters
    /// before the failing one have been updated.
    fn step(&mut self) -> Result<()>;

    /// Clears every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`).
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }

    /// The current learning rate.
    fn lr(&self) -> f32;

    /// Sets the learning rate used by the next steps (what LR schedules call). A negative
    /// or non-finite value is not rejected here; the next [`Optimizer::step`] returns `Err`.
    fn set_lr(&mut self, lr: f32);

    /// The parameters, in the order given to the constructor (state index `i` is the
    /// `i`-th).
    fn parameters(&self) -> &[Tensor];

    /// The optimizer's per-parameter state as `(name, tensor)` pairs with PyTorch's names:
    /// `state.{i}.{key}` where `i` is the parameter's index and `key` is PyTorch's
    /// (`step`, `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, `momentum_buffer`,
    /// `square_avg`, `grad_avg`, `sum`). `step` is a shape-`[]` f32 tensor, the others have
    /// the parameter's shape. Parameters not yet stepped have no entries. The tensors are
    /// copies (later steps do not change them); if the device cannot allocate a copy, the
    /// live buffer is returned instead, and if it cannot allocate a `step` scalar that entry
    /// is missing (so [`Optimizer::load_state`] of the result fails rather than resuming
    /// wrongly). Reads nothing back.
    fn state(&self) -> Vec<(String, DeviceTensor)>;

    /// Replaces the whole state with `state` (names as [`Optimizer::state`] gives them);
    /// parameters without entries start afresh. The tensors are copied. Returns `Err`
    /// naming the first bad entry (unknown or malformed name, parameter index out of range,
    /// wrong shape or dtype, a `step` that is not a positive integer, a parameter with some
    /// but not all of its entries), in which case the previous state is kept. Reads the
    /// `step` scalars back to the host.
    fn load_state(&mut self, state: &[(String, DeviceTensor)]) -> Result<()>;
}

/// Per-parameter optimizer state shared by the optimizers: named buffers of the
/// parameter's shape plus a host step counter.
pub(crate) struct Slots {
    op: &'static str,
    /// Buffer names of this configuration, in the order the kernel binds them.
    names: Vec<&'static str>,
    /// Whether `state.i.step` is part of the exported state (all but SGD).
    has_step: bool,
    /// `(steps taken, buffers)` per parameter, `None` before its first step.
    per_param: Vec<Option<(u64, Vec<DeviceTensor>)>>,
}

impl Slots {
    pub(crate) fn new(
        op: &'static str,
        n: usize,
        names: Vec<&'static str>,
        has_step: bool,
    ) -> Self {
        Slots {
            op,
            names,
            has_step,
            per_param: (0..n).map(|_| None).collect(),
        }
    }

    /// The 1-based number of the step parameter `i` is about to take and its buffers
    /// (fresh, unread ones before the first step). Commit with [`Slots::commit`].
    pub(crate) fn prepare(
        &self,
        i: usize,
        param: &DeviceTensor,
    ) -> Result<(u64, Vec<DeviceTensor>)> {
        match &self.per_param[i] {
            Some((t, bufs)) => Ok((t + 1, bufs.clone())),
            None => {
                let bufs = self
                    .names
                    .iter()
                    .map(|_| DeviceTensor::uninit(param.device(), param.shape(), DType::F32))
                    .collect::<Result<Vec<_>>>()?;
                Ok((1, bufs))
            }
        }
    }

    /// Records that parameter `i` took step `t` with `bufs`.
    pub(crate) fn commit(&mut self, i: usize, t: u64, bufs: Vec<DeviceTensor>) {
        self.per_param[i] = Some((t, bufs));
    }

    pub(crate) fn export(&self) -> Vec<(String, DeviceTensor)> {
        let mut out = Vec::new();
        for (i, s) in self.per_param.iter().enumerate() {
            let Some((t, bufs)) = s else { continue };
            let Some(first) = bufs.first() else { continue };
            if self.has_step
                && let Ok(st) = DeviceTensor::scalar(first.device(), *t as f32)
            {
                out.push((format!("state.{i}.step"), st));
            }
            for (name, b) in self.names.iter().zip(bufs) {
                // Should the copy fail (out of memory), the live buffer is handed out
                // instead: same contents now, but later steps would change it.
                let c = b.deep_clone().unwrap_or_else(|_| b.clone());
                out.push((format!("state.{i}.{name}"), c));
            }
        }
        out
    }

    pub(crate) fn import(
        &mut self,
        params: &[Tensor],
        state: &[(String, DeviceTensor)],
    ) -> Result<()> {
        let op = self.op;
        let n = params.len();
        let mut steps: Vec<Option<u64>> = vec![None; n];
        let mut found: Vec<Vec<Option<DeviceTensor>>> = vec![vec![None; self.names.len()]; n];
        for (name, t) in state {
            let bad =
                |msg: &str| Error::invalid(op, format!("state entry {name:?}: {msg}"), t.shape());
            let rest = name
                .strip_prefix("state.")
                .ok_or_else(|| bad("name does not start with \"state.\""))?;
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
            let k = self.names.iter().position(|&s| s == key).ok_or_else(|| {
                bad(&format!(
                    "unknown key (this optimizer has {:?})",
                    self.names
                ))
            })?;
            let want = params[i].shape();
            if t.shape() != want.as_slice() {
                return Err(Error::shapes(op, &want, t.shape()));
            }
            if found[i][k].replace(t.clone()).is_some() {
                return Err(bad("given twice"));
            }
        }
        let mut per_param = Vec::with_capacity(n);
        for i in 0..n {
            let count = found[i].iter().filter(|b| b.is_some()).count();
            let any = count > 0 || steps[i].is_some();
            if !any {
                per_param.push(None);
                continue;
            }
            let missing = |what: String| {
                Error::invalid(
                    op,
                    format!("state of parameter {i}: missing {what}"),
                    &params[i].shape(),
                )
            };
            if count != self.names.len() {
                let k = found[i].iter().position(|b| b.is_none()).unwrap_or(0);
                return Err(missing(format!("state.{i}.{}", self.names[k])));
            }
            let t = if self.has_step {
                steps[i].ok_or_else(|| missing(format!("state.{i}.step")))?
            } else {
                1
            };
            let bufs = found[i]
                .iter()
                .flatten()
                .map(|b| b.deep_clone())
                .collect::<Result<Vec<_>>>()?;
            if bufs.is_empty() {
                // An optimizer without buffers (SGD without momentum) keeps no state.
                per_param.push(None);
                continue;
            }
            per_param.push(Some((t, bufs)));
        }
        self.per_param = per_param;
        Ok(())
    }
}

/// Checks the parameter list of a constructor: `f32` and no tensor given twice.
pub(crate) fn check_params(op: &'static str, params: &[Tensor]) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        p.data().expect_dtype(op, DType::F32)?;
        if params[..i].iter().any(|q| q.same(p)) {
            return Err(Error::invalid(
                op,
                format!("parameter {i} appears twice in the list"),
                &p.shape(),
            ));
        }
    }
    Ok(())
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

/// Scales every gradient by `min(1, max_norm / (total_norm + 1e-6))`, where `total_norm`
/// is the L2 norm of all gradients together (PyTorch's `clip_grad_norm_` with
/// `norm_type=2`), and returns `total_norm` (before clipping) as a shape-`[]` tensor
/// without reading anything back. Parameters without a gradient are skipped; with no
/// gradient at all the norm is 0 and nothing changes. The gradients are replaced by new
/// tensors (`set_grad`), so a buffer shared by two gradients is not scaled twice. Returns
/// `Err` when `max_norm` is negative or not finite, or a gradient is not `f32`.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f32) -> Result<Tensor> {
    let op = "clip_grad_norm";
    check_nonneg(op, &[("max_norm", max_norm)])?;
    let grads: Vec<(usize, DeviceTensor)> = params
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.grad().map(|g| (i, g.data())))
        .collect();
    let mut total: Option<DeviceTensor> = None;
    for (_, g) in &grads {
        g.expect_dtype(op, DType::F32)?;
        let s = g.square()?.sum_all()?;
        total = Some(match total {
            None => s,
            Some(t) => t.add(&s)?,
        });
    }
    let Some(total) = total else {
        let device = match params.first() {
            Some(p) => p.device(),
            None => Device::default()?,
        };
        return Ok(Tensor::from_data(DeviceTensor::scalar(&device, 0.0)?));
    };
    let norm = total.sqrt()?.reshape(&[])?;
    let coef = norm
        .add_scalar(1e-6)?
        .rdiv_scalar(max_norm)?
        .minimum_scalar(1.0)?;
    for (i, g) in grads {
        let scaled = g.mul(&coef)?;
        params[i].set_grad(Some(Tensor::from_data(scaled)));
    }
    Ok(Tensor::from_data(norm))
}

/// Clamps every gradient elementwise to `[-clip, clip]` (PyTorch's `clip_grad_value_`);
/// parameters without a gradient are skipped. The gradients are replaced by new tensors.
/// Returns `Err` when `clip` is negative or not finite, or a gradient is not `f32`.
pub fn clip_grad_value(params: &[Tensor], clip: f32) -> Result<()> {
    check_nonneg("clip_grad_value", &[("clip", clip)])?;
    let mut clipped = Vec::new();
    for (i, p) in params.iter().enumerate() {
        if let Some(g) = p.grad() {
            clipped.push((i, g.data().clamp(-clip, clip)?));
        }
    }
    for (i, g) in clipped {
        params[i].set_grad(Some(Tensor::from_data(g)));
    }
    Ok(())
}
