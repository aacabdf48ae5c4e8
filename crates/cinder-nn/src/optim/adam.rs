//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`), with optional AMSGrad.

use cinder_autograd::Tensor;
use cinder_device::{AdamStep, DeviceTensor, Error, Result};

use super::{Optimizer, Slots, check_nonneg, check_params};

/// Options of [`Adam`] and [`AdamW`]. `Default` gives `torch.optim.Adam`'s defaults;
/// [`AdamConfig::adamw`] gives `torch.optim.AdamW`'s (weight decay 1e-2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (1e-3).
    pub lr: f32,
    /// Coefficients of the running averages of the gradient and its square (0.9, 0.999).
    pub betas: (f32, f32),
    /// Added to the denominator outside the square root, as PyTorch (1e-8).
    pub eps: f32,
    /// Weight decay: L2 term for Adam (0), decoupled for AdamW (1e-2).
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

impl AdamConfig {
    /// `torch.optim.AdamW`'s defaults: as Adam's with `weight_decay = 1e-2`.
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 1e-2,
            ..Default::default()
        }
    }
}

/// Adam with PyTorch's update (bias-corrected, `eps` outside the square root):
/// `g = grad + wd p` (Adam) or `p *= 1 - lr wd` (AdamW, [`Adam::adamw`]); `m = b1 m + (1 -
/// b1) g`; `v = b2 v + (1 - b2) g^2`; AMSGrad: `vmax = max(vmax, v)`; `p -= lr / (1 - b1^t)
/// * m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)`. State: `state.{i}.step`,
/// `state.{i}.exp_avg`, `state.{i}.exp_avg_sq` and, with AMSGrad,
/// `state.{i}.max_exp_avg_sq`.
pub struct Adam {
    params: Vec<Tensor>,
    cfg: AdamConfig,
    decoupled: bool,
    slots: Slots,
}

impl Adam {
    /// Adam over `params` (weight decay as an L2 term in the gradient). Returns `Err` for
    /// betas outside `[0, 1)`, a negative or non-finite lr, eps or weight decay, a `u32`
    /// parameter, or a parameter listed twice.
    pub fn new(params: Vec<Tensor>, cfg: AdamConfig) -> Result<Adam> {
        Self::build("Adam", params, cfg, false)
    }

    /// AdamW over `params` (decoupled weight decay); pass [`AdamConfig::adamw`] for
    /// PyTorch's AdamW defaults. Errors as [`Adam::new`].
    pub fn adamw(params: Vec<Tensor>, cfg: AdamConfig) -> Result<Adam> {
        Self::build("AdamW", params, cfg, true)
    }

    fn build(
        op: &'static str,
        params: Vec<Tensor>,
        cfg: AdamConfig,
        decoupled: bool,
    ) -> Result<Adam> {
        check_nonneg(
            op,
            &[
                ("lr", cfg.lr),
                ("eps", cfg.eps),
                ("weight_decay", cfg.weight_decay),
            ],
        )?;
        for (name, b) in [("beta1", cfg.betas.0), ("beta2", cfg.betas.1)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(
                    op,
                    format!("{name} = {b} not in [0, 1)"),
                    &[],
                ));
            }
        }
        check_params(op, &params)?;
        let mut names = vec!["exp_avg", "exp_avg_sq"];
        if cfg.amsgrad {
            names.push("max_exp_avg_sq");
        }
        let slots = Slots::new(op, params.len(), names, true);
        Ok(Adam {
            params,
            cfg,
            decoupled,
            slots,
        })
    }

    /// The options in force (with the current learning rate).
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// True for AdamW (decoupled weight decay).
    pub fn is_decoupled(&self) -> bool {
        self.decoupled
    }
}

/// `torch.optim.AdamW`: [`Adam`] with decoupled weight decay and PyTorch's AdamW defaults.
pub struct AdamW;

impl AdamW {
    /// AdamW over `params` with `cfg` (start from [`AdamConfig::adamw`] for PyTorch's
    /// defaults). Same as [`Adam::adamw`]; errors as [`Adam::new`].
    #[allow(clippy::new_ret_no_self)]
    pub fn new(params: Vec<Tensor>, cfg: AdamConfig) -> Result<Adam> {
        Adam::adamw(params, cfg)
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = p.grad() else { continue };
            let data = p.data();
            let (t, bufs) = self.slots.prepare(i, &data)?;
            let h = AdamStep {
                lr: self.cfg.lr,
                beta1: self.cfg.betas.0,
                beta2: self.cfg.betas.1,
                eps: self.cfg.eps,
                weight_decay: self.cfg.weight_decay,
                decoupled: self.decoupled,
                maximize: self.cfg.maximize,
                step: t,
            };
            data.adam_step_(&g.data(), &bufs[0], &bufs[1], bufs.get(2), &h)?;
            self.slots.commit(i, t, bufs);
        }
        Ok(())
    }

    common_optimizer_methods!();
}
