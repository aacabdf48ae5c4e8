//! RMSprop (`torch.optim.RMSprop`).

use cinder_autograd::Tensor;
use cinder_device::{Result, RmspropStep};

use super::base::{Core, Hyper, HyperValue, check_nonneg};
use super::{GroupConfig, Optimizer, ParamGroup};

/// Options of [`RmsProp`] (of one parameter group); `Default` gives PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (1e-2).
    pub lr: f32,
    /// Smoothing constant (0.99).
    pub alpha: f32,
    /// Added to the denominator outside the square root (1e-8).
    pub eps: f32,
    /// L2 penalty added to the gradient (0).
    pub weight_decay: f32,
    /// Momentum factor (0).
    pub momentum: f32,
    /// Normalize by the variance estimate `v - E[g]^2` instead of `v` (false).
    pub centered: bool,
    /// Maximize the objective instead of minimizing it (false).
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

impl Hyper for RmsPropConfig {
    fn hypers(&self) -> Vec<(&'static str, HyperValue)> {
        vec![
            ("alpha", HyperValue::F32(self.alpha)),
            ("eps", HyperValue::F32(self.eps)),
            ("weight_decay", HyperValue::F32(self.weight_decay)),
            ("momentum", HyperValue::F32(self.momentum)),
            ("centered", HyperValue::Bool(self.centered)),
            ("maximize", HyperValue::Bool(self.maximize)),
        ]
    }

    fn set_hyper(&mut self, key: &str, v: HyperValue) -> bool {
        match (key, v) {
            ("alpha", HyperValue::F32(x)) => self.alpha = x,
            ("eps", HyperValue::F32(x)) => self.eps = x,
            ("weight_decay", HyperValue::F32(x)) => self.weight_decay = x,
            ("momentum", HyperValue::F32(x)) => self.momentum = x,
            ("centered", HyperValue::Bool(b)) => self.centered = b,
            ("maximize", HyperValue::Bool(b)) => self.maximize = b,
            _ => return false,
        }
        true
    }

    fn validate(&self, op: &'static str) -> Result<()> {
        check_nonneg(
            op,
            &[
                ("alpha", self.alpha),
                ("eps", self.eps),
                ("weight_decay", self.weight_decay),
                ("momentum", self.momentum),
            ],
        )
    }

    fn state_keys(&self) -> Vec<&'static str> {
        let mut keys = vec!["square_avg"];
        if self.centered {
            keys.push("grad_avg");
        }
        if self.momentum > 0.0 {
            keys.push("momentum_buffer");
        }
        keys
    }

    fn set_momentum(&mut self, op: &'static str, m: f32) -> Result<()> {
        check_nonneg(op, &[("momentum", m)])?;
        self.momentum = m;
        Ok(())
    }
}

impl GroupConfig for RmsPropConfig {
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

/// RMSprop with PyTorch's update: `g = grad + wd p`, `v = alpha v + (1 - alpha) g^2`;
/// centered: `ga = alpha ga + (1 - alpha) g`, `denom = sqrt(v - ga^2) + eps`, else `denom
/// = sqrt(v) + eps`; with momentum `buf = momentum buf + g / denom`, `p -= lr buf`, else
/// `p -= lr g / denom`. All state starts at zero. State: `state.{i}.step`,
/// `state.{i}.square_avg`, and `state.{i}.grad_avg` (centered),
/// `state.{i}.momentum_buffer` (momentum > 0).
pub struct RmsProp {
    core: Core<RmsPropConfig>,
}

impl RmsProp {
    /// An optimizer over `params`, one group. Returns `Err` for a negative or non-finite
    /// option, a `u32` parameter, or a parameter listed twice.
    pub fn new(params: Vec<Tensor>, cfg: RmsPropConfig) -> Result<RmsProp> {
        Self::with_groups(vec![ParamGroup::new(params, cfg)])
    }

    /// An optimizer over parameter groups, each with its own options. Errors as
    /// [`RmsProp::new`] (naming the group), and for an empty list of groups or a parameter
    /// in two groups.
    pub fn with_groups(groups: Vec<ParamGroup<RmsPropConfig>>) -> Result<RmsProp> {
        Ok(RmsProp {
            core: Core::new(
                "RMSprop",
                groups,
                true,
                &["square_avg", "momentum_buffer", "grad_avg"],
            )?,
        })
    }

    config_methods!(RmsPropConfig);
}

impl Optimizer for RmsProp {
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
                let h = RmspropStep {
                    lr: cfg.lr,
                    alpha: cfg.alpha,
                    eps: cfg.eps,
                    weight_decay: cfg.weight_decay,
                    momentum: cfg.momentum,
                    maximize: cfg.maximize,
                    step: prep.t,
                };
                let mut rest = prep.bufs[1..].iter();
                let grad_avg = if cfg.centered { rest.next() } else { None };
                let buf = if cfg.momentum > 0.0 {
                    rest.next()
                } else {
                    None
                };
                data.rmsprop_step_(&grad.raw(), &prep.bufs[0], grad_avg, buf, &h)?;
                self.core.commit(i, prep, &keys);
            }
        }
        Ok(())
    }

    delegate_optimizer_methods!();
}
