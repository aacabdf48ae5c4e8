//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`), with optional AMSGrad.
//!
//! The two are different types with different configs, so the kind of weight decay is
//! fixed by the type: [`Adam`] takes [`AdamConfig`] and adds `weight_decay * p` to the
//! gradient (L2); [`AdamW`] takes [`AdamWConfig`] and decays the weights directly
//! (decoupled, `p *= 1 - lr * weight_decay`). PyTorch's `Adam(...,
//! decoupled_weight_decay=True)` is [`AdamW`].

use cinder_autograd::Tensor;
use cinder_device::{AdamStep, Result};

use super::base::{Core, Hyper, HyperValue, check_nonneg, check_unit};
use super::{GroupConfig, Optimizer, ParamGroup};

/// Options of [`Adam`] (of one parameter group). `Default` gives `torch.optim.Adam`'s
/// defaults. The weight decay is an L2 term added to the gradient; for decoupled decay use
/// [`AdamW`] and [`AdamWConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (1e-3).
    pub lr: f32,
    /// Coefficients of the running averages of the gradient and its square (0.9, 0.999).
    pub betas: (f32, f32),
    /// Added to the denominator outside the square root, as PyTorch (1e-8).
    pub eps: f32,
    /// L2 penalty added to the gradient (0).
    pub weight_decay: f32,
    /// Use the AMSGrad variant (false).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it (false).
    pub maximize: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// Options of [`AdamW`] (of one parameter group). `Default` gives `torch.optim.AdamW`'s
/// defaults (as Adam's, with weight decay 1e-2). The weight decay is decoupled: `p *= 1 -
/// lr * weight_decay` before the Adam update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate (1e-3).
    pub lr: f32,
    /// Coefficients of the running averages of the gradient and its square (0.9, 0.999).
    pub betas: (f32, f32),
    /// Added to the denominator outside the square root, as PyTorch (1e-8).
    pub eps: f32,
    /// Decoupled weight decay (1e-2).
    pub weight_decay: f32,
    /// Use the AMSGrad variant (false).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it (false).
    pub maximize: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
        }
    }
}

const KEYS: &[&str] = &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

/// The two configs' shared fields, with the kind of decay.
#[derive(Clone, Copy)]
struct Parts {
    lr: f32,
    betas: (f32, f32),
    eps: f32,
    weight_decay: f32,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
}

macro_rules! adam_like_config {
    ($cfg:ty, $decoupled:expr) => {
        impl $cfg {
            fn parts(&self) -> Parts {
                Parts {
                    lr: self.lr,
                    betas: self.betas,
                    eps: self.eps,
                    weight_decay: self.weight_decay,
                    amsgrad: self.amsgrad,
                    maximize: self.maximize,
                    decoupled: $decoupled,
                }
            }
        }

        impl Hyper for $cfg {
            fn hypers(&self) -> Vec<(&'static str, HyperValue)> {
                vec![
                    ("betas", HyperValue::Pair(self.betas.0, self.betas.1)),
                    ("eps", HyperValue::F32(self.eps)),
                    ("weight_decay", HyperValue::F32(self.weight_decay)),
                    ("amsgrad", HyperValue::Bool(self.amsgrad)),
                    ("maximize", HyperValue::Bool(self.maximize)),
                    ("decoupled_weight_decay", HyperValue::Bool($decoupled)),
                ]
            }

            fn set_hyper(&mut self, key: &str, v: HyperValue) -> bool {
                match (key, v) {
                    ("betas", HyperValue::Pair(a, b)) => self.betas = (a, b),
                    ("eps", HyperValue::F32(x)) => self.eps = x,
                    ("weight_decay", HyperValue::F32(x)) => self.weight_decay = x,
                    ("amsgrad", HyperValue::Bool(b)) => self.amsgrad = b,
                    ("maximize", HyperValue::Bool(b)) => self.maximize = b,
                    // The kind of decay is the optimizer's type: a checkpoint of the other
                    // one is refused rather than silently changing the update rule.
                    ("decoupled_weight_decay", HyperValue::Bool(b)) => return b == $decoupled,
                    _ => return false,
                }
                true
            }

            fn validate(&self, op: &'static str) -> Result<()> {
                check_nonneg(
                    op,
                    &[("eps", self.eps), ("weight_decay", self.weight_decay)],
                )?;
                check_unit(op, "beta1", self.betas.0)?;
                check_unit(op, "beta2", self.betas.1)
            }

            fn state_keys(&self) -> Vec<&'static str> {
                if self.amsgrad {
                    KEYS.to_vec()
                } else {
                    KEYS[..2].to_vec()
                }
            }

            fn set_momentum(&mut self, op: &'static str, m: f32) -> Result<()> {
                check_unit(op, "beta1", m)?;
                self.betas.0 = m;
                Ok(())
            }
        }

        impl GroupConfig for $cfg {
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
                Some(self.betas.0)
            }
        }
    };
}

adam_like_config!(AdamConfig, false);
adam_like_config!(AdamWConfig, true);

/// One step of every parameter with a gradient, for either config.
fn adam_step<C: GroupConfig + Copy>(core: &mut Core<C>, parts: impl Fn(&C) -> Parts) -> Result<()> {
    for g in 0..core.groups.len() {
        let cfg = core.groups[g].cfg;
        let c = parts(&cfg);
        let keys = cfg.state_keys();
        for i in core.groups[g].range.clone() {
            let Some(grad) = core.params[i].grad() else {
                continue;
            };
            let data = core.params[i].raw();
            let prep = core.prepare(i, &data, &keys)?;
            let h = AdamStep {
                lr: c.lr,
                beta1: c.betas.0,
                beta2: c.betas.1,
                eps: c.eps,
                weight_decay: c.weight_decay,
                decoupled: c.decoupled,
                maximize: c.maximize,
                step: prep.t,
            };
            let b = &prep.bufs;
            let vmax = if c.amsgrad { b.get(2) } else { None };
            data.adam_step_(&grad.raw(), &b[0], &b[1], vmax, &h)?;
            core.commit(i, prep, &keys);
        }
    }
    Ok(())
}

/// Adam with PyTorch's update (bias-corrected, `eps` outside the square root): `g = grad +
/// wd p`; `m = b1 m + (1 - b1) g`; `v = b2 v + (1 - b2) g^2`; AMSGrad: `vmax = max(vmax,
/// v)`; `p -= lr / (1 - b1^t) * m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)`. State:
/// `state.{i}.step`, `state.{i}.exp_avg`, `state.{i}.exp_avg_sq` and, with AMSGrad,
/// `state.{i}.max_exp_avg_sq`.
pub struct Adam {
    core: Core<AdamConfig>,
}

impl Adam {
    /// Adam over `params`, one group (weight decay as an L2 term in the gradient). Returns
    /// `Err` for betas outside `[0, 1)`, a negative or non-finite lr, eps or weight decay, a
    /// `u32` parameter, or a parameter listed twice.
    pub fn new(params: Vec<Tensor>, cfg: AdamConfig) -> Result<Adam> {
        Self::with_groups(vec![ParamGroup::new(params, cfg)])
    }

    /// Adam over parameter groups, each with its own options. Errors as [`Adam::new`]
    /// (naming the group), and for an empty list of groups or a parameter in two groups.
    pub fn with_groups(groups: Vec<ParamGroup<AdamConfig>>) -> Result<Adam> {
        Ok(Adam {
            core: Core::new("Adam", groups, true, KEYS)?,
        })
    }

    config_methods!(AdamConfig);
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        adam_step(&mut self.core, AdamConfig::parts)
    }

    delegate_optimizer_methods!();
}

/// AdamW (`torch.optim.AdamW`): Adam with decoupled weight decay, `p *= 1 - lr wd` before
/// the update of [`Adam`] (whose gradient then has no L2 term). Same state keys as Adam.
pub struct AdamW {
    core: Core<AdamWConfig>,
}

impl AdamW {
    /// AdamW over `params`, one group. Returns `Err` for betas outside `[0, 1)`, a negative
    /// or non-finite lr, eps or weight decay, a `u32` parameter, or a parameter listed
    /// twice.
    pub fn new(params: Vec<Tensor>, cfg: AdamWConfig) -> Result<AdamW> {
        Self::with_groups(vec![ParamGroup::new(params, cfg)])
    }

    /// AdamW over parameter groups, each with its own options (see
    /// [`super::weight_decay_groups`] for no decay on biases and norms). Errors as
    /// [`AdamW::new`] (naming the group), and for an empty list of groups or a parameter
    /// in two groups.
    pub fn with_groups(groups: Vec<ParamGroup<AdamWConfig>>) -> Result<AdamW> {
        Ok(AdamW {
            core: Core::new("AdamW", groups, true, KEYS)?,
        })
    }

    config_methods!(AdamWConfig);
}

impl Optimizer for AdamW {
    fn step(&mut self) -> Result<()> {
        adam_step(&mut self.core, AdamWConfig::parts)
    }

    delegate_optimizer_methods!();
}
