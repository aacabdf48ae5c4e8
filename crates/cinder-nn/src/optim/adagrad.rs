//! Adagrad (`torch.optim.Adagrad`).

use cinder_autograd::Tensor;
use cinder_device::{AdagradStep, DeviceTensor, Result};

use super::{Optimizer, Slots, check_nonneg, check_params};

/// Options of [`Adagrad`]; `Default` gives PyTorch's defaults.
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

/// Adagrad with PyTorch's update: `clr = lr / (1 + (t - 1) lr_decay)`, `g = grad + wd p`,
/// `sum += g^2` (starting at `initial_accumulator_value`), `p -= clr g / (sqrt(sum) +
/// eps)`. State: `state.{i}.step`, `state.{i}.sum`.
pub struct Adagrad {
    params: Vec<Tensor>,
    cfg: AdagradConfig,
    slots: Slots,
}

impl Adagrad {
    /// An optimizer over `params`. Returns `Err` for a negative or non-finite option, a
    /// `u32` parameter, or a parameter listed twice.
    pub fn new(params: Vec<Tensor>, cfg: AdagradConfig) -> Result<Adagrad> {
        let op = "Adagrad";
        check_nonneg(
            op,
            &[
                ("lr", cfg.lr),
                ("lr_decay", cfg.lr_decay),
                ("weight_decay", cfg.weight_decay),
                ("initial_accumulator_value", cfg.initial_accumulator_value),
                ("eps", cfg.eps),
            ],
        )?;
        check_params(op, &params)?;
        let slots = Slots::new(op, params.len(), vec!["sum"], true);
        Ok(Adagrad { params, cfg, slots })
    }

    /// The options in force (with the current learning rate).
    pub fn config(&self) -> &AdagradConfig {
        &self.cfg
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self) -> Result<()> {
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = p.grad() else { continue };
            let data = p.data();
            let (t, bufs) = self.slots.prepare(i, &data)?;
            let h = AdagradStep {
                lr: self.cfg.lr,
                lr_decay: self.cfg.lr_decay,
                weight_decay: self.cfg.weight_decay,
                initial_accumulator_value: self.cfg.initial_accumulator_value,
                eps: self.cfg.eps,
                maximize: self.cfg.maximize,
                step: t,
            };
            data.adagrad_step_(&g.data(), &bufs[0], &h)?;
            self.slots.commit(i, t, bufs);
        }
        Ok(())
    }

    common_optimizer_methods!();
}
