//! Learning-rate schedules (`torch.optim.lr_scheduler`), in PyTorch's closed forms.
//!
//! A schedule is a shape: it holds no learning rate of its own. Like a PyTorch scheduler,
//! it sets every parameter group of an optimizer from that group's base rate (its initial
//! learning rate, [`Optimizer::initial_lrs`]), so groups with different rates follow the
//! same schedule from their own bases. It counts epochs (or steps) from 0:
//! [`LrScheduler::apply`] sets the rates of the current count (call it once after building
//! the schedule: PyTorch's constructor does, which matters for schedules that do not start
//! at the base rate, such as [`LinearWarmup`] and [`OneCycleLr`]),
//! [`LrScheduler::step_optimizer`] advances the count and sets the new rates (PyTorch's
//! `scheduler.step()`), [`LrScheduler::lr_at`] gives the rate of any group and count without
//! an optimizer. Rates are computed in `f64` from `f64` factors (an `f32` gamma of 0.9 would
//! be off by 1e-6 after 40 epochs) and returned as `f32`.
//!
//! | Cinder | PyTorch |
//! |---|---|
//! | [`StepLr`] | `StepLR` |
//! | [`MultiStepLr`] | `MultiStepLR` |
//! | [`ExponentialLr`] | `ExponentialLR` |
//! | [`CosineAnnealingLr`] | `CosineAnnealingLR` |
//! | [`CosineAnnealingWarmRestarts`] | `CosineAnnealingWarmRestarts` |
//! | [`PolynomialLr`] | `PolynomialLR` |
//! | [`LinearWarmup`] | `LinearLR`, or `SequentialLR([LinearLR, inner], [n])` |
//! | [`OneCycleLr`] | `OneCycleLR` (with momentum / beta1 cycling) |
//! | [`ReduceLrOnPlateau`] | `ReduceLROnPlateau` |
//!
//! PyTorch's `step()` computes most rates recursively from the group's current rate (the
//! "chainable" form); the closed forms used here give the same sequences (checked step by
//! step against PyTorch in the conformance suite) as long as nothing else changes the rate
//! between steps. Where something does (a `set_lr` by hand, two schedules on one
//! optimizer), PyTorch's recursive form builds on the changed rate, while a Cinder schedule
//! sets the closed-form rate again at its next step.

use cinder_device::{Error, Result};

use crate::optim::Optimizer;

/// A schedule whose rate is a function of the epoch count and each group's base rate.
pub trait LrScheduler {
    /// The rate at epoch `epoch` of parameter group `group`, whose base (initial) rate is
    /// `base_lr`. Returns `Err` for a negative or non-finite `base_lr`, and where PyTorch
    /// raises (a [`OneCycleLr`] past its last step or a per-group option missing for
    /// `group`).
    fn lr_at(&self, group: usize, base_lr: f32, epoch: usize) -> Result<f32>;

    /// The momentum (SGD's or RMSprop's `momentum`, Adam's `beta1`) the schedule sets for
    /// `group` at `epoch`, or `None` for schedules that leave it alone (all but
    /// [`OneCycleLr`] with `cycle_momentum`). Returns `Err` as [`LrScheduler::lr_at`].
    fn momentum_at(&self, group: usize, epoch: usize) -> Result<Option<f32>> {
        let _ = (group, epoch);
        Ok(None)
    }

    /// `Err` when the schedule cannot drive an optimizer with `groups` parameter groups
    /// (a per-group option list of another length, as PyTorch checks); `Ok` for schedules
    /// without per-group options.
    fn check_groups(&self, groups: usize) -> Result<()> {
        let _ = groups;
        Ok(())
    }

    /// The current epoch count (0 before the first step).
    fn epoch(&self) -> usize;

    /// Sets the epoch count (to resume a run; then call [`LrScheduler::apply`]).
    fn set_epoch(&mut self, epoch: usize);

    /// The rate at the current epoch of a group whose base rate is `base_lr`. Errors as
    /// [`LrScheduler::lr_at`].
    fn lr(&self, base_lr: f32) -> Result<f32> {
        self.lr_at(0, base_lr, self.epoch())
    }

    /// Advances the epoch count by one without touching an optimizer.
    fn step(&mut self) {
        self.set_epoch(self.epoch() + 1);
    }

    /// Sets every group of `opt` to its rate at the current epoch (from the group's
    /// initial rate), and its momentum where the schedule cycles it; returns the first
    /// group's rate. Returns `Err` as [`LrScheduler::lr_at`] and
    /// [`LrScheduler::check_groups`], or when the schedule sets a momentum and `opt` has
    /// none (Adagrad); nothing changes then.
    fn apply(&self, opt: &mut dyn Optimizer) -> Result<f32> {
        let e = self.epoch();
        let bases = opt.initial_lrs();
        self.check_groups(bases.len())?;
        let mut lrs = Vec::with_capacity(bases.len());
        let mut moms = Vec::with_capacity(bases.len());
        for (g, &b) in bases.iter().enumerate() {
            lrs.push(self.lr_at(g, b, e)?);
            let m = self.momentum_at(g, e)?;
            if m.is_some() && opt.momentum(g).is_none() {
                return Err(Error::invalid(
                    "LrScheduler",
                    format!(
                        "the schedule sets a momentum but the optimizer has none in group \
                         {g} (PyTorch: \"optimizer must support momentum or beta1\")"
                    ),
                    &[],
                ));
            }
            moms.push(m);
        }
        for (g, (&lr, m)) in lrs.iter().zip(moms).enumerate() {
            opt.set_group_lr(g, lr)?;
            if let Some(m) = m {
                opt.set_group_momentum(g, m)?;
            }
        }
        Ok(lrs.first().copied().unwrap_or(0.0))
    }

    /// Advances one epoch and sets the new rates on `opt` (PyTorch's `scheduler.step()`);
    /// returns the first group's rate. Errors as [`LrScheduler::apply`], in which case the
    /// epoch count is not advanced.
    fn step_optimizer(&mut self, opt: &mut dyn Optimizer) -> Result<f32> {
        let e = self.epoch();
        self.set_epoch(e + 1);
        let r = self.apply(opt);
        if r.is_err() {
            self.set_epoch(e);
        }
        r
    }
}

fn check_base(op: &'static str, base_lr: f32) -> Result<f64> {
    if !(base_lr.is_finite() && base_lr >= 0.0) {
        return Err(Error::invalid(
            op,
            format!("base lr {base_lr} must be finite and >= 0"),
            &[],
        ));
    }
    Ok(base_lr as f64)
}

fn check_gamma(op: &'static str, gamma: f64) -> Result<()> {
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(Error::invalid(
            op,
            format!("gamma {gamma} must be finite and > 0"),
            &[],
        ));
    }
    Ok(())
}

fn check_eta_min(op: &'static str, eta_min: f32) -> Result<()> {
    if !(eta_min.is_finite() && eta_min >= 0.0) {
        return Err(Error::invalid(
            op,
            format!("eta_min {eta_min} must be finite and >= 0"),
            &[],
        ));
    }
    Ok(())
}

fn powi(x: f64, k: usize) -> f64 {
    x.powi(k.min(i32::MAX as usize) as i32)
}

macro_rules! epoch_impl {
    () => {
        fn epoch(&self) -> usize {
            self.epoch
        }
        fn set_epoch(&mut self, epoch: usize) {
            self.epoch = epoch;
        }
    };
}

/// `StepLR`: `base_lr * gamma^floor(epoch / step_size)`.
#[derive(Clone, Debug)]
pub struct StepLr {
    step_size: usize,
    gamma: f64,
    epoch: usize,
}

impl StepLr {
    /// Decays by `gamma` every `step_size` epochs (PyTorch's default gamma is 0.1).
    /// Returns `Err` for `step_size == 0` or a gamma that is not positive and finite.
    pub fn new(step_size: usize, gamma: f64) -> Result<StepLr> {
        check_gamma("StepLR", gamma)?;
        if step_size == 0 {
            return Err(Error::invalid("StepLR", "step_size must be > 0", &[]));
        }
        Ok(StepLr {
            step_size,
            gamma,
            epoch: 0,
        })
    }
}

impl LrScheduler for StepLr {
    fn lr_at(&self, _group: usize, base_lr: f32, epoch: usize) -> Result<f32> {
        let b = check_base("StepLR", base_lr)?;
        Ok((b * powi(self.gamma, epoch / self.step_size)) as f32)
    }
    epoch_impl!();
}

/// `MultiStepLR`: `base_lr * gamma^(number of milestones <= epoch)`, a milestone given
/// twice counting twice (PyTorch keeps them in a `Counter`).
#[derive(Clone, Debug)]
pub struct MultiStepLr {
    milestones: Vec<usize>,
    gamma: f64,
    epoch: usize,
}

impl MultiStepLr {
    /// Decays by `gamma` at each milestone epoch; the milestones may come in any order and
    /// repeat, as in PyTorch. Returns `Err` for a gamma that is not positive and finite.
    pub fn new(milestones: &[usize], gamma: f64) -> Result<MultiStepLr> {
        check_gamma("MultiStepLR", gamma)?;
        let mut milestones = milestones.to_vec();
        milestones.sort_unstable();
        Ok(MultiStepLr {
            milestones,
            gamma,
            epoch: 0,
        })
    }
}

impl LrScheduler for MultiStepLr {
    fn lr_at(&self, _group: usize, base_lr: f32, epoch: usize) -> Result<f32> {
        let b = check_base("MultiStepLR", base_lr)?;
        let k = self.milestones.partition_point(|&m| m <= epoch);
        Ok((b * powi(self.gamma, k)) as f32)
    }
    epoch_impl!();
}

/// `ExponentialLR`: `base_lr * gamma^epoch`.
#[derive(Clone, Debug)]
pub struct ExponentialLr {
    gamma: f64,
    epoch: usize,
}

impl ExponentialLr {
    /// Decays by `gamma` every epoch. Returns `Err` for a gamma that is not positive and
    /// finite.
    pub fn new(gamma: f64) -> Result<ExponentialLr> {
        check_gamma("ExponentialLR", gamma)?;
        Ok(ExponentialLr { gamma, epoch: 0 })
    }
}

impl LrScheduler for ExponentialLr {
    fn lr_at(&self, _group: usize, base_lr: f32, epoch: usize) -> Result<f32> {
        let b = check_base("ExponentialLR", base_lr)?;
        Ok((b * powi(self.gamma, epoch)) as f32)
    }
    epoch_impl!();
}

/// `CosineAnnealingLR`: `eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2`
/// (past `t_max` the cosine continues, rising again, as PyTorch's).
#[derive(Clone, Debug)]
pub struct CosineAnnealingLr {
    t_max: usize,
    eta_min: f32,
    epoch: usize,
}

impl CosineAnnealingLr {
    /// Anneals from the base rate to `eta_min` over `t_max` epochs (PyTorch's default
    /// `eta_min` is 0). Returns `Err` for `t_max == 0` or a negative or non-finite
    /// `eta_min`.
    pub fn new(t_max: usize, eta_min: f32) -> Result<CosineAnnealingLr> {
        let op = "CosineAnnealingLR";
        check_eta_min(op, eta_min)?;
        if t_max == 0 {
            return Err(Error::invalid(op, "t_max must be > 0", &[]));
        }
        Ok(CosineAnnealingLr {
            t_max,
            eta_min,
            epoch: 0,
        })
    }
}

fn cosine(base: f64, eta_min: f64, num: usize, den: usize) -> f32 {
    let c = (std::f64::consts::PI * num as f64 / den as f64).cos();
    (eta_min + (base - eta_min) * (1.0 + c) / 2.0) as f32
}

impl LrScheduler for CosineAnnealingLr {
    fn lr_at(&self, _group: usize, base_lr: f32, epoch: usize) -> Result<f32> {
        let b = check_base("CosineAnnealingLR", base_lr)?;
        Ok(cosine(b, self.eta_min as f64, epoch, self.t_max))
    }
    epoch_impl!();
}

/// `CosineAnnealingWarmRestarts` (SGDR): a cosine from the base rate to `eta_min` over a
/// period of `t_0` epochs, restarting at the base rate, each period `t_mult` times the
/// previous one: `eta_min + (base_lr - eta_min) (1 + cos(pi t_cur / t_i)) / 2`.
#[derive(Clone, Debug)]
pub struct CosineAnnealingWarmRestarts {
    t_0: usize,
    t_mult: usize,
    eta_min: f32,
    epoch: usize,
}

impl CosineAnnealingWarmRestarts {
    /// Periods of `t_0`, `t_0 t_mult`, `t_0 t_mult^2`, ... epochs (PyTorch's defaults:
    /// `t_mult = 1`, `eta_min = 0`). Returns `Err` for `t_0 == 0`, `t_mult == 0` or a
    /// negative or non-finite `eta_min`.
    pub fn new(t_0: usize, t_mult: usize, eta_min: f32) -> Result<CosineAnnealingWarmRestarts> {
        let op = "CosineAnnealingWarmRestarts";
        check_eta_min(op, eta_min)?;
        if t_0 == 0 {
            return Err(Error::invalid(op, "T_0 must be > 0", &[]));
        }
        if t_mult == 0 {
            return Err(Error::invalid(op, "T_mult must be >= 1", &[]));
        }
        Ok(CosineAnnealingWarmRestarts {
            t_0,
            t_mult,
            eta_min,
            epoch: 0,
        })
    }

    /// `(t_cur, t_i)` at `epoch`: the position in the current period and its length, with
    /// integer arithmetic (PyTorch's step-by-step counters, not its `log` formula).
    pub fn position(&self, epoch: usize) -> (usize, usize) {
        if self.t_mult == 1 {
            return (epoch % self.t_0, self.t_0);
        }
        let (mut cur, mut len) = (epoch, self.t_0);
        while cur >= len {
            cur -= len;
            len = len.saturating_mul(self.t_mult);
        }
        (cur, len)
    }
}

impl LrScheduler for CosineAnnealingWarmRestarts {
    fn lr_at(&self, _group: usize, base_lr: f32, epoch: usize) -> Result<f32> {
        let b = check_base("CosineAnnealingWarmRestarts", base_lr)?;
        let (cur, len) = self.position(epoch);
        Ok(cosine(b, self.eta_min as f64, cur, len))
    }
    epoch_impl!();
}

/// `PolynomialLR`: `base_lr * (1 - min(epoch, total_iters) / total_iters)^power`, so the
/// rate reaches 0 at `total_iters` and stays there.
#[derive(Clone, Debug)]
pub struct PolynomialLr {
    total_iters: usize,
    power: f64,
    epoch: usize,
}

impl PolynomialLr {
    /// Decays over `total_iters` epochs with `power` (PyTorch's defaults: 5 and 1.0).
    /// Returns `Err` for `total_iters == 0` or a negative or non-finite `power` (PyTorch
    /// divides by zero there).
    pub fn new(total_iters: usize, power: f64) -> Result<PolynomialLr> {
        let op = "PolynomialLR";
        if total_iters == 0 {
            return Err(Error::invalid(op, "total_iters must be > 0", &[]));
        }
        if !(power.is_finite() && power >= 0.0) {
            return Err(Error::invalid(
                op,
                format!("power {power} must be finite and >= 0"),
                &[],
            ));
        }
        Ok(PolynomialLr {
            total_iters,
            power,
            epoch: 0,
        })
    }
}

impl LrScheduler for PolynomialLr {
    fn lr_at(&self, _group: usize, base_lr: f32, epoch: usize) -> Result<f32> {
        let b = check_base("PolynomialLR", base_lr)?;
        let t = self.total_iters as f64;
        let f = (1.0 - epoch.min(self.total_iters) as f64 / t).powf(self.power);
        Ok((b * f) as f32)
    }
    epoch_impl!();
}

/// `LinearLR`: the factor goes linearly from `start_factor` to `end_factor` over
/// `total_iters` epochs and then stays ([`LinearWarmup::new`], [`LinearWarmup::linear`]);
/// or a warmup from `start_factor` to 1 that hands over to another schedule at epoch
/// `warmup`, where that schedule starts at its own epoch 0 ([`LinearWarmup::then`], as
/// PyTorch's `SequentialLR([LinearLR(opt, start_factor, 1.0, warmup), inner],
/// milestones=[warmup])`).
pub struct LinearWarmup {
    start_factor: f64,
    end_factor: f64,
    warmup: usize,
    inner: Option<Box<dyn LrScheduler + Send>>,
    epoch: usize,
}

impl LinearWarmup {
    /// Warmup to the base rate over `warmup` epochs (`LinearLR(start_factor, 1.0,
    /// warmup)`). Returns `Err` for `start_factor` outside `(0, 1]` or `warmup == 0`.
    pub fn new(start_factor: f64, warmup: usize) -> Result<LinearWarmup> {
        Self::linear(start_factor, 1.0, warmup)
    }

    /// PyTorch's `LinearLR(start_factor, end_factor, total_iters)` (its defaults: 1/3,
    /// 1.0, 5). Returns `Err` for `start_factor` outside `(0, 1]`, `end_factor` outside
    /// `[0, 1]` (as PyTorch) or `total_iters == 0`.
    pub fn linear(start_factor: f64, end_factor: f64, total_iters: usize) -> Result<LinearWarmup> {
        let op = "LinearLR";
        if !(start_factor > 0.0 && start_factor <= 1.0) {
            return Err(Error::invalid(
                op,
                format!("start_factor {start_factor} not in (0, 1]"),
                &[],
            ));
        }
        if !(0.0..=1.0).contains(&end_factor) {
            return Err(Error::invalid(
                op,
                format!("end_factor {end_factor} not in [0, 1]"),
                &[],
            ));
        }
        if total_iters == 0 {
            return Err(Error::invalid(op, "total_iters must be > 0", &[]));
        }
        Ok(LinearWarmup {
            start_factor,
            end_factor,
            warmup: total_iters,
            inner: None,
            epoch: 0,
        })
    }

    /// Warmup from `start_factor` times the base rate to the base rate over `warmup`
    /// epochs, then `inner` from its epoch 0 (`SequentialLR`). Errors as
    /// [`LinearWarmup::new`].
    pub fn then(
        inner: Box<dyn LrScheduler + Send>,
        start_factor: f64,
        warmup: usize,
    ) -> Result<LinearWarmup> {
        let mut w = Self::linear(start_factor, 1.0, warmup)?;
        w.inner = Some(inner);
        Ok(w)
    }
}

impl LrScheduler for LinearWarmup {
    fn lr_at(&self, group: usize, base_lr: f32, epoch: usize) -> Result<f32> {
        if let Some(inner) = &self.inner
            && epoch >= self.warmup
        {
            return inner.lr_at(group, base_lr, epoch - self.warmup);
        }
        let b = check_base("LinearLR", base_lr)?;
        let (s, e) = (self.start_factor, self.end_factor);
        let f = s + (e - s) * epoch.min(self.warmup) as f64 / self.warmup as f64;
        Ok((b * f) as f32)
    }

    fn check_groups(&self, groups: usize) -> Result<()> {
        match &self.inner {
            Some(inner) => inner.check_groups(groups),
            None => Ok(()),
        }
    }

    fn momentum_at(&self, group: usize, epoch: usize) -> Result<Option<f32>> {
        match &self.inner {
            Some(inner) if epoch >= self.warmup => inner.momentum_at(group, epoch - self.warmup),
            _ => Ok(None),
        }
    }

    epoch_impl!();
}

/// How [`OneCycleLr`] goes from one rate to the next within a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anneal {
    /// Half a cosine (`anneal_strategy="cos"`, PyTorch's default).
    Cos,
    /// A straight line (`anneal_strategy="linear"`).
    Linear,
}

/// Options of [`OneCycleLr`]; `Default` gives PyTorch's defaults. The per-group options
/// (`base_momentum`, `max_momentum`) hold one value for every group or one per group.
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycleConfig {
    /// Fraction of the steps spent raising the rate (0.3); in `[0, 1]`.
    pub pct_start: f64,
    /// Cosine or linear annealing (`Cos`).
    pub anneal_strategy: Anneal,
    /// Cycle the momentum (SGD's, RMSprop's) or Adam's beta1 inversely to the rate (true).
    pub cycle_momentum: bool,
    /// The lowest momentum, reached with the highest rate (0.85).
    pub base_momentum: Vec<f32>,
    /// The highest momentum, at the start and the end (0.95).
    pub max_momentum: Vec<f32>,
    /// The initial rate is `max_lr / div_factor` (25).
    pub div_factor: f64,
    /// The last rate is `initial / final_div_factor` (1e4).
    pub final_div_factor: f64,
    /// Three phases (up, down to the initial rate, down to the last) instead of two (false).
    pub three_phase: bool,
}

impl Default for OneCycleConfig {
    fn default() -> Self {
        OneCycleConfig {
            pct_start: 0.3,
            anneal_strategy: Anneal::Cos,
            cycle_momentum: true,
            base_momentum: vec![0.85],
            max_momentum: vec![0.95],
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    }
}

/// `OneCycleLR` (the 1cycle policy): the rate rises from `max_lr / div_factor` to `max_lr`
/// over the first `pct_start` of `total_steps`, then falls to `max_lr / div_factor /
/// final_div_factor`; with `cycle_momentum` the momentum (or Adam's beta1) moves the other
/// way between `max_momentum` and `base_momentum`. Stepped once per batch. Ignores the
/// groups' own rates: each group's `max_lr` is given here. PyTorch's phase boundaries
/// (`pct_start * total_steps - 1`, ...) and its annealing formulas are followed exactly,
/// including a last step at `total_steps` (extrapolated, as PyTorch); a step past it is an
/// `Err` (PyTorch raises), as is a phase of zero length hit by a step (PyTorch divides by
/// zero).
#[derive(Clone, Debug)]
pub struct OneCycleLr {
    max_lrs: Vec<f32>,
    total_steps: usize,
    cfg: OneCycleConfig,
    epoch: usize,
}

impl OneCycleLr {
    /// A 1cycle schedule over `total_steps` steps; `max_lr` holds one rate for every group
    /// or one per group. Returns `Err` for `total_steps == 0`, an empty or non-finite or
    /// negative `max_lr` or momentum list, `pct_start` outside `[0, 1]`, or a `div_factor`
    /// or `final_div_factor` that is not positive and finite.
    pub fn new(max_lr: &[f32], total_steps: usize, cfg: OneCycleConfig) -> Result<OneCycleLr> {
        let op = "OneCycleLR";
        if total_steps == 0 {
            return Err(Error::invalid(op, "total_steps must be > 0", &[]));
        }
        let lists = [
            ("max_lr", max_lr),
            ("base_momentum", &cfg.base_momentum[..]),
            ("max_momentum", &cfg.max_momentum[..]),
        ];
        for (name, list) in lists {
            if list.is_empty() || list.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(Error::invalid(
                    op,
                    format!("{name} {list:?} must be one or more finite values >= 0"),
                    &[],
                ));
            }
        }
        if !(0.0..=1.0).contains(&cfg.pct_start) {
            return Err(Error::invalid(
                op,
                format!("pct_start {} not in [0, 1]", cfg.pct_start),
                &[],
            ));
        }
        for (name, v) in [
            ("div_factor", cfg.div_factor),
            ("final_div_factor", cfg.final_div_factor),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    op,
                    format!("{name} {v} must be finite and > 0"),
                    &[],
                ));
            }
        }
        Ok(OneCycleLr {
            max_lrs: max_lr.to_vec(),
            total_steps,
            cfg,
            epoch: 0,
        })
    }

    /// [`OneCycleLr::new`] with `total_steps = epochs * steps_per_epoch`. Errors as
    /// [`OneCycleLr::new`], and for `epochs == 0` or `steps_per_epoch == 0`.
    pub fn with_epochs(
        max_lr: &[f32],
        epochs: usize,
        steps_per_epoch: usize,
        cfg: OneCycleConfig,
    ) -> Result<OneCycleLr> {
        if epochs == 0 || steps_per_epoch == 0 {
            return Err(Error::invalid(
                "OneCycleLR",
                format!("epochs {epochs} and steps_per_epoch {steps_per_epoch} must be > 0"),
                &[],
            ));
        }
        let total = epochs.checked_mul(steps_per_epoch).ok_or_else(|| {
            Error::invalid("OneCycleLR", "epochs * steps_per_epoch overflows", &[])
        })?;
        Self::new(max_lr, total, cfg)
    }

    /// The number of steps of the cycle.
    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    fn pick(list: &[f32], name: &str, group: usize) -> Result<f64> {
        let v = match list {
            [v] => *v,
            _ => *list.get(group).ok_or_else(|| {
                Error::invalid(
                    "OneCycleLR",
                    format!(
                        "{name} has {} values but the optimizer has a group {group}",
                        list.len()
                    ),
                    &[],
                )
            })?,
        };
        Ok(v as f64)
    }

    /// `(rate, momentum)` of `group` at `step`, as PyTorch's `get_lr`.
    fn at(&self, group: usize, step: usize) -> Result<(f64, f64)> {
        let op = "OneCycleLR";
        if step > self.total_steps {
            return Err(Error::invalid(
                op,
                format!(
                    "tried to step {step} times; the schedule has {} steps",
                    self.total_steps
                ),
                &[],
            ));
        }
        let c = &self.cfg;
        let max_lr = Self::pick(&self.max_lrs, "max_lr", group)?;
        let initial = max_lr / c.div_factor;
        let min_lr = initial / c.final_div_factor;
        let max_m = Self::pick(&c.max_momentum, "max_momentum", group)?;
        let base_m = Self::pick(&c.base_momentum, "base_momentum", group)?;
        let total = self.total_steps as f64;
        // (end_step, start_lr, end_lr, start_momentum, end_momentum)
        let phases: Vec<(f64, f64, f64, f64, f64)> = if c.three_phase {
            vec![
                (c.pct_start * total - 1.0, initial, max_lr, max_m, base_m),
                (
                    2.0 * c.pct_start * total - 2.0,
                    max_lr,
                    initial,
                    base_m,
                    max_m,
                ),
                (total - 1.0, initial, min_lr, max_m, max_m),
            ]
        } else {
            vec![
                (c.pct_start * total - 1.0, initial, max_lr, max_m, base_m),
                (total - 1.0, max_lr, min_lr, base_m, max_m),
            ]
        };
        let s = step as f64;
        let mut start = 0.0;
        for (i, &(end, lr0, lr1, m0, m1)) in phases.iter().enumerate() {
            if s <= end || i == phases.len() - 1 {
                let span = end - start;
                if span == 0.0 {
                    return Err(Error::invalid(
                        op,
                        format!(
                            "step {step} falls in phase {i} of zero length (pct_start {} of \
                             {} steps); PyTorch divides by zero here",
                            c.pct_start, self.total_steps
                        ),
                        &[],
                    ));
                }
                let pct = (s - start) / span;
                let anneal = |a: f64, b: f64| match c.anneal_strategy {
                    Anneal::Cos => b + (a - b) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0),
                    Anneal::Linear => (b - a) * pct + a,
                };
                return Ok((anneal(lr0, lr1), anneal(m0, m1)));
            }
            start = end;
        }
        unreachable!("the last phase always matches")
    }
}

impl LrScheduler for OneCycleLr {
    fn check_groups(&self, groups: usize) -> Result<()> {
        let lists = [
            ("max_lr", &self.max_lrs),
            ("base_momentum", &self.cfg.base_momentum),
            ("max_momentum", &self.cfg.max_momentum),
        ];
        for (name, list) in lists {
            if list.len() != 1 && list.len() != groups {
                return Err(Error::invalid(
                    "OneCycleLR",
                    format!(
                        "{name} has {} values for {groups} parameter groups (give one, or \
                         one per group)",
                        list.len()
                    ),
                    &[],
                ));
            }
        }
        Ok(())
    }

    fn lr_at(&self, group: usize, _base_lr: f32, epoch: usize) -> Result<f32> {
        Ok(self.at(group, epoch)?.0 as f32)
    }

    fn momentum_at(&self, group: usize, epoch: usize) -> Result<Option<f32>> {
        if !self.cfg.cycle_momentum {
            return Ok(None);
        }
        Ok(Some(self.at(group, epoch)?.1 as f32))
    }

    epoch_impl!();
}

/// Whether a lower or a higher metric is better for [`ReduceLrOnPlateau`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How [`ReduceLrOnPlateau`] reads its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Better means beyond `best * (1 -/+ threshold)`.
    Rel,
    /// Better means beyond `best -/+ threshold`.
    Abs,
}

/// Options of [`ReduceLrOnPlateau`]; `Default` gives PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlateauConfig {
    /// Lower or higher is better (`Min`).
    pub mode: PlateauMode,
    /// Factor the rate is multiplied by (0.1).
    pub factor: f32,
    /// Epochs without improvement tolerated before reducing (10).
    pub patience: usize,
    /// Least improvement that counts (1e-4).
    pub threshold: f32,
    /// Relative or absolute threshold (`Rel`).
    pub threshold_mode: ThresholdMode,
    /// Epochs to wait after a reduction before counting again (0).
    pub cooldown: usize,
    /// Lower bound of every group's rate (0); see [`ReduceLrOnPlateau::with_min_lrs`] for
    /// one per group.
    pub min_lr: f32,
    /// Reductions smaller than this are skipped (1e-8).
    pub eps: f32,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// `ReduceLROnPlateau`: multiplies every group's current rate by `factor` (not below its
/// `min_lr`) when the metric given to [`ReduceLrOnPlateau::step_optimizer_with`] has not
/// improved for more than `patience` epochs, then waits `cooldown` epochs. A NaN metric
/// never counts as an improvement. Unlike the closed-form schedules it acts on the rates
/// the optimizer has now, as PyTorch's.
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    cfg: PlateauConfig,
    /// Per-group bounds, `None` for `cfg.min_lr` in every group.
    min_lrs: Option<Vec<f32>>,
    best: f64,
    num_bad: usize,
    cooldown_counter: usize,
    epoch: usize,
}

impl ReduceLrOnPlateau {
    /// Returns `Err` for `factor` outside `[0, 1)`, or a negative or non-finite threshold,
    /// `min_lr` or `eps`.
    pub fn new(cfg: PlateauConfig) -> Result<ReduceLrOnPlateau> {
        let op = "ReduceLROnPlateau";
        if !(0.0..1.0).contains(&cfg.factor) {
            return Err(Error::invalid(
                op,
                format!("factor {} not in [0, 1)", cfg.factor),
                &[],
            ));
        }
        for (name, v) in [
            ("threshold", cfg.threshold),
            ("min_lr", cfg.min_lr),
            ("eps", cfg.eps),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    op,
                    format!("{name} {v} must be finite and >= 0"),
                    &[],
                ));
            }
        }
        let best = match cfg.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        Ok(ReduceLrOnPlateau {
            min_lrs: None,
            cfg,
            best,
            num_bad: 0,
            cooldown_counter: 0,
            epoch: 0,
        })
    }

    /// One lower bound per group (PyTorch's `min_lr` list) instead of `cfg.min_lr`; the
    /// optimizer must then have exactly `min_lrs.len()` groups. Returns `Err` for an empty
    /// list or a negative or non-finite value.
    pub fn with_min_lrs(mut self, min_lrs: Vec<f32>) -> Result<ReduceLrOnPlateau> {
        if min_lrs.is_empty() || min_lrs.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(Error::invalid(
                "ReduceLROnPlateau",
                format!("min_lrs {min_lrs:?} must be one or more finite values >= 0"),
                &[],
            ));
        }
        self.min_lrs = Some(min_lrs);
        Ok(self)
    }

    /// Epochs seen so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The best metric seen so far (`inf` or `-inf` before any).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Epochs since the last improvement (PyTorch's `num_bad_epochs`).
    pub fn num_bad_epochs(&self) -> usize {
        self.num_bad
    }

    fn is_better(&self, a: f64) -> bool {
        let (t, best) = (self.cfg.threshold as f64, self.best);
        match (self.cfg.mode, self.cfg.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (1.0 + t),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }

    /// The lower bound of every group of `groups`.
    fn min_lrs(&self, groups: usize) -> Result<Vec<f64>> {
        match &self.min_lrs {
            None => Ok(vec![self.cfg.min_lr as f64; groups]),
            Some(list) if list.len() == groups => Ok(list.iter().map(|&v| v as f64).collect()),
            Some(list) => Err(Error::invalid(
                "ReduceLROnPlateau",
                format!(
                    "{} min_lrs for {groups} parameter groups (PyTorch: \"expected {groups} \
                     min_lrs\")",
                    list.len()
                ),
                &[],
            )),
        }
    }

    /// Records one epoch's `metric` and updates the rates of every group in `lrs` (one
    /// per group, reduced where PyTorch would). Returns whether this epoch reduced (a
    /// reduction smaller than `eps` leaves that rate as it is but still starts the
    /// cooldown, as PyTorch). Returns `Err`, recording nothing, when per-group `min_lrs`
    /// were given for another number of groups than `lrs.len()`.
    pub fn step_with(&mut self, lrs: &mut [f32], metric: f32) -> Result<bool> {
        let mins = self.min_lrs(lrs.len())?;
        let current = metric as f64;
        self.epoch += 1;
        if self.is_better(current) {
            self.best = current;
            self.num_bad = 0;
        } else {
            self.num_bad += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad = 0;
        }
        if self.num_bad <= self.cfg.patience {
            return Ok(false);
        }
        for (lr, min) in lrs.iter_mut().zip(mins) {
            let old = *lr as f64;
            let new = (old * self.cfg.factor as f64).max(min);
            if old - new > self.cfg.eps as f64 {
                *lr = new as f32;
            }
        }
        self.cooldown_counter = self.cfg.cooldown;
        self.num_bad = 0;
        Ok(true)
    }

    /// [`ReduceLrOnPlateau::step_with`] on the optimizer's current rates, setting the
    /// reduced ones; returns the first group's rate. Errors as
    /// [`ReduceLrOnPlateau::step_with`].
    pub fn step_optimizer_with(&mut self, opt: &mut dyn Optimizer, metric: f32) -> Result<f32> {
        let mut lrs = opt.lrs();
        if self.step_with(&mut lrs, metric)? {
            for (g, &lr) in lrs.iter().enumerate() {
                opt.set_group_lr(g, lr)?;
            }
        }
        Ok(lrs.first().copied().unwrap_or(0.0))
    }
}
