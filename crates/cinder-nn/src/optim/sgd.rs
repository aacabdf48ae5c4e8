//! Stochastic gradient descent (`torch.optim.SGD`).

use cinder_autograd::Tensor;
use cinder_device::{DeviceTensor, Error, Result, SgdStep};

use super::{Optimizer, Slots, check_nonneg, check_params};

/// Options of [`Sgd`]; `Default` gives PyTorch's defaults (`lr=1e-3`, no momentum).
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

/// SGD with PyTorch's update: `g = grad + wd p`; with momentum `buf = g` on the first step,
/// then `buf = momentum buf + (1 - dampening) g`, and `g = g + momentum buf` (Nesterov) or
/// `g = buf`; `p -= lr g`. State: `state.{i}.momentum_buffer` (only with momentum).
pub struct Sgd {
    params: Vec<Tensor>,
    cfg: SgdConfig,
    slots: Slots,
}

impl Sgd {
    /// An optimizer over `params` (e.g. `VarStore::parameters()`). Returns `Err` for a
    /// negative or non-finite lr, momentum, dampening or weight decay, Nesterov without
    /// momentum or with dampening, a `u32` parameter, or a parameter listed twice.
    pub fn new(params: Vec<Tensor>, cfg: SgdConfig) -> Result<Sgd> {
        let op = "SGD";
        check_nonneg(
            op,
            &[
                ("lr", cfg.lr),
                ("momentum", cfg.momentum),
                ("dampening", cfg.dampening),
                ("weight_decay", cfg.weight_decay),
            ],
        )?;
        if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
            return Err(Error::invalid(
                op,
                "Nesterov momentum requires a momentum and zero dampening",
                &[],
            ));
        }
        check_params(op, &params)?;
        let names = if cfg.momentum != 0.0 {
            vec!["momentum_buffer"]
        } else {
            vec![]
        };
        let slots = Slots::new(op, params.len(), names, false);
        Ok(Sgd { params, cfg, slots })
    }

    /// The options in force (with the current learning rate).
    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = p.grad() else { continue };
            let data = p.data();
            let (t, bufs) = self.slots.prepare(i, &data)?;
            let h = SgdStep {
                lr: self.cfg.lr,
                momentum: self.cfg.momentum,
                dampening: self.cfg.dampening,
                weight_decay: self.cfg.weight_decay,
                nesterov: self.cfg.nesterov,
                maximize: self.cfg.maximize,
                step: t,
            };
            data.sgd_step_(&g.data(), bufs.first(), &h)?;
            self.slots.commit(i, t, bufs);
        }
        Ok(())
    }

    common_optimizer_methods!();
}
