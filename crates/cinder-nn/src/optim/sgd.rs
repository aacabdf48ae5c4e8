//! Stochastic gradient descent (`torch.optim.SGD`).

use cinder_autograd::Tensor;
use cinder_device::{Error, Result, SgdStep};

use super::base::{Core, Hyper, HyperValue, check_nonneg};
use super::{GroupConfig, Optimizer, ParamGroup};

/// Options of [`Sgd`] (of one parameter group); `Default` gives PyTorch's defaults
/// (`lr=1e-3`, no momentum).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (PyTorch: 1e-3).
    pub lr: f32,
    /// Momentum factor (0).
    pub momentum: f32,
    /// Dampening for momentum (0).
    pub dampening: f32,
    /// L2 penalty added to the gradient (0).
    pub weight_decay: f32,
    /// Nesterov momentum (false); needs `momentum > 0` and `dampening == 0`.
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing it (false).
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

const OP: &str = "SGD";

impl Hyper for SgdConfig {
    fn hypers(&self) -> Vec<(&'static str, HyperValue)> {
        vec![
            ("momentum", HyperValue::F32(self.momentum)),
            ("dampening", HyperValue::F32(self.dampening)),
            ("weight_decay", HyperValue::F32(self.weight_decay)),
            ("nesterov", HyperValue::Bool(self.nesterov)),
            ("maximize", HyperValue::Bool(self.maximize)),
        ]
    }

    fn set_hyper(&mut self, key: &str, v: HyperValue) -> bool {
        match (key, v) {
            ("momentum", HyperValue::F32(x)) => self.momentum = x,
            ("dampening", HyperValue::F32(x)) => self.dampening = x,
            ("weight_decay", HyperValue::F32(x)) => self.weight_decay = x,
            ("nesterov", HyperValue::Bool(b)) => self.nesterov = b,
            ("maximize", HyperValue::Bool(b)) => self.maximize = b,
            _ => return false,
        }
        true
    }

    fn validate(&self, op: &'static str) -> Result<()> {
        check_nonneg(
            op,
            &[
                ("momentum", self.momentum),
                ("dampening", self.dampening),
                ("weight_decay", self.weight_decay),
            ],
        )?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::invalid(
                op,
                "Nesterov momentum requires a momentum and zero dampening",
                &[],
            ));
        }
        Ok(())
    }

    fn state_keys(&self) -> Vec<&'static str> {
        if self.momentum != 0.0 {
            vec!["momentum_buffer"]
        } else {
            vec![]
        }
    }

    fn set_momentum(&mut self, op: &'static str, m: f32) -> Result<()> {
        check_nonneg(op, &[("momentum", m)])?;
        self.momentum = m;
        Ok(())
    }
}

impl GroupConfig for SgdConfig {
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn weight_decay(&self) -> f32 {
        self.weight_decay
    }
    fn set_weight_decay(&mut self, weight_decay: f32) {
        self.weight_decay = weight_decay;
    }
    fn momentum(&self) -> Option<f32> {
        Some(self.momentum)
    }
}

/// SGD with PyTorch's update: `g = grad + wd p`; with momentum `buf = g` on the first step,
/// then `buf = momentum buf + (1 - dampening) g`, and `g = g + momentum buf` (Nesterov) or
/// `g = buf`; `p -= lr g`. State: `state.{i}.momentum_buffer` (once a step used momentum;
/// no `step`, as PyTorch). A group whose momentum is 0 does a plain step (and Nesterov is
/// then ignored, as PyTorch).
pub struct Sgd {
    core: Core<SgdConfig>,
}

impl Sgd {
    /// An optimizer over `params` (e.g. `VarStore::parameters()`), one group. Returns `Err`
    /// for a negative or non-finite lr, momentum, dampening or weight decay, Nesterov
    /// without momentum or with dampening, a `u32` parameter, or a parameter listed twice.
    pub fn new(params: Vec<Tensor>, cfg: SgdConfig) -> Result<Sgd> {
        Self::with_groups(vec![ParamGroup::new(params, cfg)])
    }

    /// An optimizer over parameter groups, each with its own options (PyTorch's
    /// `SGD([{"params": ..., "lr": ...}, ...])`). Errors as [`Sgd::new`] (naming the group),
    /// and for an empty list of groups or a parameter in two groups.
    pub fn with_groups(groups: Vec<ParamGroup<SgdConfig>>) -> Result<Sgd> {
        Ok(Sgd {
            core: Core::new(OP, groups, false, &["momentum_buffer"])?,
        })
    }

    config_methods!(SgdConfig);
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        for g in 0..self.core.groups.len() {
            let cfg = self.core.groups[g].cfg;
            let keys = cfg.state_keys();
            for i in self.core.groups[g].range.clone() {
                let Some(grad) = self.core.params[i].grad() else {
                    continue;
                };
                let data = self.core.params[i].raw();
                let prep = self.core.prepare(i, &data, &keys)?;
                let h = SgdStep {
                    lr: cfg.lr,
                    momentum: cfg.momentum,
                    dampening: cfg.dampening,
                    weight_decay: cfg.weight_decay,
                    nesterov: cfg.nesterov && cfg.momentum != 0.0,
                    maximize: cfg.maximize,
                    // The momentum buffer starts as the gradient the first time it is used.
                    step: if prep.fresh { 1 } else { prep.t.max(2) },
                };
                data.sgd_step_(&grad.raw(), prep.bufs.first(), &h)?;
                self.core.commit(i, prep, &keys);
            }
        }
        Ok(())
    }

    delegate_optimizer_methods!();
}
