//! RMSprop (`torch.optim.RMSprop`).

use cinder_autograd::Tensor;
use cinder_device::{DeviceTensor, Result, RmspropStep};

use super::{Optimizer, Slots, check_nonneg, check_params};

/// Options of [`RmsProp`]; `Default` gives PyTorch's defaults.
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

/// RMSprop with PyTorch's update: `g = grad + wd p`, `v = alpha v + (1 - alpha) g^2`;
/// centered: `ga = alpha ga + (1 - alpha) g`, `denom = sqrt(v - ga^2) + eps`, else `denom
/// = sqrt(v) + eps`; with momentum `buf = momentum buf + g / denom`, `p -= lr buf`, else
/// `p -= lr g / denom`. All state starts at zero. State: `state.{i}.step`,
/// `state.{i}.square_avg`, and `state.{i}.grad_avg` (centered),
/// `state.{i}.momentum_buffer` (momentum > 0).
pub struct RmsProp {
    params: Vec<Tensor>,
    cfg: RmsPropConfig,
    slots: Slots,
}

impl RmsProp {
    /// An optimizer over `params`. Returns `Err` for a negative or non-finite option, a
    /// `u32` parameter, or a parameter listed twice.
    pub fn new(params: Vec<Tensor>, cfg: RmsPropConfig) -> Result<RmsProp> {
        let op = "RMSprop";
        check_nonneg(
            op,
            &[
                ("lr", cfg.lr),
                ("alpha", cfg.alpha),
                ("eps", cfg.eps),
                ("weight_decay", cfg.weight_decay),
                ("momentum", cfg.momentum),
            ],
        )?;
        check_params(op, &params)?;
        let mut names = vec!["square_avg"];
        if cfg.centered {
            names.push("grad_avg");
        }
        if cfg.momentum > 0.0 {
            names.push("momentum_buffer");
        }
        let slots = Slots::new(op, params.len(), names, true);
        Ok(RmsProp { params, cfg, slots })
    }

    /// The options in force (with the current learning rate).
    pub fn config(&self) -> &RmsPropConfig {
        &self.cfg
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self) -> Result<()> {
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = p.grad() else { continue };
            let data = p.data();
            let (t, bufs) = self.slots.prepare(i, &data)?;
            let h = RmspropStep {
                lr: self.cfg.lr,
                alpha: self.cfg.alpha,
                eps: self.cfg.eps,
                weight_decay: self.cfg.weight_decay,
                momentum: self.cfg.momentum,
                maximize: self.cfg.maximize,
                step: t,
            };
            let mut rest = bufs[1..].iter();
            let grad_avg = if self.cfg.centered { rest.next() } else { None };
            let buf = if self.cfg.momentum > 0.0 {
                rest.next()
            } else {
                None
            };
            data.rmsprop_step_(&g.data(), &bufs[0], grad_avg, buf, &h)?;
            self.slots.commit(i, t, bufs);
        }
        Ok(())
    }

    common_optimizer_methods!();
}
