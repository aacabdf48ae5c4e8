//! Adagrad (`torch.optim.Adagrad`).

use cinder_autograd::Tensor;
use cinder_device::{AdagradStep, Error, Result};

use super::base::{Core, Hyper, HyperValue, check_nonneg};
use super::{GroupConfig, Optimizer, ParamGroup};

/// Options of [`Adagrad`] (of one parameter group); `Default` gives PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate (PyTorch: 1e-2).
    pub lr: f32,
    /// Learning-rate decay (0).
    pub lr_decay: f32,
    /// L2 penalty added to the gradient (0).
    pub weight_decay: f32,
    /// Initial value of the squared-gradient sum (0).
    pub initial_accumulator_value: f32,
    /// Added to the denominator outside the square root (1e-10).
    pub eps: f32,
    /// Maximize the objective instead of minimizing it (false).
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

impl Hyper for AdagradConfig {
    fn hypers(&self) -> Vec<(&'static str, HyperValue)> {
        vec![
            ("lr_decay", HyperValue::F32(self.lr_decay)),
            ("weight_decay", HyperValue::F32(self.weight_decay)),
            (
                "initial_accumulator_value",
                HyperValue::F32(self.initial_accumulator_value),
            ),
            ("eps", HyperValue::F32(self.eps)),
            ("maximize", HyperValue::Bool(self.maximize)),
        ]
    }

    fn set_hyper(&mut self, key: &str, v: HyperValue) -> bool {
        match (key, v) {
            ("lr_decay", HyperValue::F32(x)) => self.lr_decay = x,
            ("weight_decay", HyperValue::F32(x)) => self.weight_decay = x,
            ("initial_accumulator_value", HyperValue::F32(x)) => self.initial_accumulator_value = x,
            ("eps", HyperValue::F32(x)) => self.eps = x,
            ("maximize", HyperValue::Bool(b)) => self.maximize = b,
            _ => return false,
        }
        true
    }

    fn validate(&self, op: &'static str) -> Result<()> {
        check_nonneg(
            op,
            &[
                ("lr_decay", self.lr_decay),
                ("weight_decay", self.weight_decay),
                ("initial_accumulator_value", self.initial_accumulator_value),
                ("eps", self.eps),
            ],
        )
    }

    fn state_keys(&self) -> Vec<&'static str> {
        vec!["sum"]
    }

    fn set_momentum(&mut self, op: &'static str, _m: f32) -> Result<()> {
        Err(Error::invalid(
            op,
            "Adagrad has no momentum (nor beta1) to set; a 1cycle schedule over Adagrad \
             needs cycle_momentum = false",
            &[],
        ))
    }
}

impl GroupConfig for AdagradConfig {
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
        None
    }
}

/// Adagrad with PyTorch's update: `clr = lr / (1 + (t - 1) lr_decay)`, `g = grad + wd p`,
/// `sum += g^2` (starting at `initial_accumulator_value`), `p -= clr g / (sqrt(sum) +
/// eps)`. State: `state.{i}.step`, `state.{i}.sum`.
pub struct Adagrad {
    core: Core<AdagradConfig>,
}

impl Adagrad {
    /// An optimizer over `params`, one group. Returns `Err` for a negative or non-finite
    /// option, a `u32` parameter, or a parameter listed twice.
    pub fn new(params: Vec<Tensor>, cfg: AdagradConfig) -> Result<Adagrad> {
        Self::with_groups(vec![ParamGroup::new(params, cfg)])
    }

    /// An optimizer over parameter groups, each with its own options. Errors as
    /// [`Adagrad::new`] (naming the group), and for an empty list of groups or a parameter
    /// in two groups.
    pub fn with_groups(groups: Vec<ParamGroup<AdagradConfig>>) -> Result<Adagrad> {
        Ok(Adagrad {
            core: Core::new("Adagrad", groups, true, &["sum"])?,
        })
    }

    config_methods!(AdagradConfig);
}

impl Optimizer for Adagrad {
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
                let h = AdagradStep {
                    lr: cfg.lr,
                    lr_decay: cfg.lr_decay,
                    weight_decay: cfg.weight_decay,
                    initial_accumulator_value: cfg.initial_accumulator_value,
                    eps: cfg.eps,
                    maximize: cfg.maximize,
                    step: prep.t,
                };
                data.adagrad_step_(&grad.raw(), &prep.bufs[0], &h)?;
                self.core.commit(i, prep, &keys);
            }
        }
        Ok(())
    }

    delegate_optimizer_methods!();
}
