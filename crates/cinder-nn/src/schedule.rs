//! Learning-rate schedules with PyTorch's closed forms (`torch.optim.lr_scheduler`).
//!
//! A schedule counts epochs (or steps) from 0: [`LrScheduler::lr`] is the rate at the
//! current count, [`LrScheduler::step`] advances it and returns the new rate, and
//! [`LrScheduler::step_optimizer`] also sets it on an [`Optimizer`]. Rates are computed in
//! `f64` from the closed form and returned as `f32`.
//!
//! | Cinder | PyTorch |
//! |---|---|
//! | [`StepLr`] | `StepLR` |
//! | [`MultiStepLr`] | `MultiStepLR` |
//! | [`ExponentialLr`] | `ExponentialLR` |
//! | [`CosineAnnealingLr`] | `CosineAnnealingLR` (closed form) |
//! | [`LinearWarmup`] | `LinearLR`, or `SequentialLR([LinearLR, inner], [n])` |
//! | [`ReduceLrOnPlateau`] | `ReduceLROnPlateau` |

use cinder_device::{Error, Result};

use crate::optim::Optimizer;

/// A schedule whose rate is a function of the epoch count.
pub trait LrScheduler {
    /// The rate at epoch `epoch` (closed form).
    fn lr_at(&self, epoch: usize) -> f32;
    /// The current epoch count (0 before the first [`LrScheduler::step`]).
    fn epoch(&self) -> usize;
    /// Sets the epoch count (to resume a run).
    fn set_epoch(&mut self, epoch: usize);
    /// The rate at the current epoch.
    fn lr(&self) -> f32 {
        self.lr_at(self.epoch())
    }
    /// Advances one epoch and returns the new rate.
    fn step(&mut self) -> f32 {
        self.set_epoch(self.epoch() + 1);
        self.lr()
    }
    /// Advances one epoch, sets the new rate on `opt` and returns it.
    fn step_optimizer(&mut self, opt: &mut dyn Optimizer) -> f32 {
        let lr = self.step();
        opt.set_lr(lr);
        lr
    }
}

fn check_base(op: &'static str, base_lr: f32) -> Result<()> {
    if !(base_lr.is_finite() && base_lr >= 0.0) {
        return Err(Error::invalid(
            op,
            format!("base lr {base_lr} must be finite and >= 0"),
            &[],
        ));
    }
    Ok(())
}

fn check_gamma(op: &'static str, gamma: f32) -> Result<()> {
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(Error::invalid(
            op,
            format!("gamma {gamma} must be finite and > 0"),
            &[],
        ));
    }
    Ok(())
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
    base_lr: f32,
    step_size: usize,
    gamma: f32,
    epoch: usize,
}

impl StepLr {
    /// Decays by `gamma` every `step_size` epochs (PyTorch's default gamma is 0.1).
    /// Returns `Err` for `step_size == 0`, a gamma that is not positive and finite, or a
    /// negative or non-finite base rate.
    pub fn new(base_lr: f32, step_size: usize, gamma: f32) -> Result<StepLr> {
        check_base("StepLR", base_lr)?;
        check_gamma("StepLR", gamma)?;
        if step_size == 0 {
            return Err(Error::invalid("StepLR", "step_size must be > 0", &[]));
        }
        Ok(StepLr {
            base_lr,
            step_size,
            gamma,
            epoch: 0,
        })
    }
}

impl LrScheduler for StepLr {
    fn lr_at(&self, epoch: usize) -> f32 {
        let k = (epoch / self.step_size) as i32;
        (self.base_lr as f64 * (self.gamma as f64).powi(k)) as f32
    }
    epoch_impl!();
}

/// `MultiStepLR`: `base_lr * gamma^(number of milestones <= epoch)`.
#[derive(Clone, Debug)]
pub struct MultiStepLr {
    base_lr: f32,
    milestones: Vec<usize>,
    gamma: f32,
    epoch: usize,
}

impl MultiStepLr {
    /// Decays by `gamma` at each milestone epoch. Returns `Err` when the milestones are not
    /// strictly increasing, or for a bad gamma or base rate (as [`StepLr::new`]).
    pub fn new(base_lr: f32, milestones: &[usize], gamma: f32) -> Result<MultiStepLr> {
        check_base("MultiStepLR", base_lr)?;
        check_gamma("MultiStepLR", gamma)?;
        if milestones.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid(
                "MultiStepLR",
                format!("milestones {milestones:?} must be strictly increasing"),
                &[],
            ));
        }
        Ok(MultiStepLr {
            base_lr,
            milestones: milestones.to_vec(),
            gamma,
            epoch: 0,
        })
    }
}

impl LrScheduler for MultiStepLr {
    fn lr_at(&self, epoch: usize) -> f32 {
        let k = self.milestones.iter().filter(|&&m| m <= epoch).count() as i32;
        (self.base_lr as f64 * (self.gamma as f64).powi(k)) as f32
    }
    epoch_impl!();
}

/// `ExponentialLR`: `base_lr * gamma^epoch`.
#[derive(Clone, Debug)]
pub struct ExponentialLr {
    base_lr: f32,
    gamma: f32,
    epoch: usize,
}

impl ExponentialLr {
    /// Decays by `gamma` every epoch. Returns `Err` for a bad gamma or base rate.
    pub fn new(base_lr: f32, gamma: f32) -> Result<ExponentialLr> {
        check_base("ExponentialLR", base_lr)?;
        check_gamma("ExponentialLR", gamma)?;
        Ok(ExponentialLr {
            base_lr,
            gamma,
            epoch: 0,
        })
    }
}

impl LrScheduler for ExponentialLr {
    fn lr_at(&self, epoch: usize) -> f32 {
        let k = epoch.min(i32::MAX as usize) as i32;
        (self.base_lr as f64 * (self.gamma as f64).powi(k)) as f32
    }
    epoch_impl!();
}

/// `CosineAnnealingLR` in PyTorch's closed form: `eta_min + (base_lr - eta_min) * (1 +
/// cos(pi * epoch / t_max)) / 2` (past `t_max` the cosine continues, rising again).
#[derive(Clone, Debug)]
pub struct CosineAnnealingLr {
    base_lr: f32,
    t_max: usize,
    eta_min: f32,
    epoch: usize,
}

impl CosineAnnealingLr {
    /// Anneals from `base_lr` to `eta_min` over `t_max` epochs (PyTorch's default
    /// `eta_min` is 0). Returns `Err` for `t_max == 0` or a negative or non-finite rate.
    pub fn new(base_lr: f32, t_max: usize, eta_min: f32) -> Result<CosineAnnealingLr> {
        check_base("CosineAnnealingLR", base_lr)?;
        check_base("CosineAnnealingLR", eta_min)?;
        if t_max == 0 {
            return Err(Error::invalid(
                "CosineAnnealingLR",
                "t_max must be > 0",
                &[],
            ));
        }
        Ok(CosineAnnealingLr {
            base_lr,
            t_max,
            eta_min,
            epoch: 0,
        })
    }
}

impl LrScheduler for CosineAnnealingLr {
    fn lr_at(&self, epoch: usize) -> f32 {
        let (b, m) = (self.base_lr as f64, self.eta_min as f64);
        let c = (std::f64::consts::PI * epoch as f64 / self.t_max as f64).cos();
        (m + (b - m) * (1.0 + c) / 2.0) as f32
    }
    epoch_impl!();
}

/// Linear warmup: the factor goes from `start_factor` to 1 over `warmup` epochs
/// (`LinearLR(start_factor, end_factor=1, total_iters=warmup)`), then either stays at
/// `base_lr` ([`LinearWarmup::new`]) or hands over to another schedule, which starts at its
/// own epoch 0 at epoch `warmup` ([`LinearWarmup::then`], as PyTorch's
/// `SequentialLR([LinearLR(...), inner], milestones=[warmup])`). During warmup the rate is
/// the factor times the inner schedule's epoch-0 rate.
pub struct LinearWarmup {
    base_lr: f32,
    start_factor: f32,
    end_factor: f32,
    warmup: usize,
    inner: Option<Box<dyn LrScheduler + Send>>,
    epoch: usize,
}

impl LinearWarmup {
    /// Warmup to a constant `base_lr`. Returns `Err` for `start_factor` outside `(0, 1]`,
    /// `warmup == 0`, or a negative or non-finite base rate.
    pub fn new(base_lr: f32, start_factor: f32, warmup: usize) -> Result<LinearWarmup> {
        Self::linear(base_lr, start_factor, 1.0, warmup)
    }

    /// PyTorch's `LinearLR`: the factor goes from `start_factor` to `end_factor` over
    /// `total_iters` epochs and then stays. Returns `Err` for `start_factor` outside `(0,
    /// 1]`, `end_factor` outside `[0, 1]`, `total_iters == 0`, or a bad base rate.
    pub fn linear(
        base_lr: f32,
        start_factor: f32,
        end_factor: f32,
        total_iters: usize,
    ) -> Result<LinearWarmup> {
        let op = "LinearLR";
        check_base(op, base_lr)?;
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
            base_lr,
            start_factor,
            end_factor,
            warmup: total_iters,
            inner: None,
            epoch: 0,
        })
    }

    /// Warmup over `warmup` epochs into `inner` (its epoch-0 rate is the target). Errors as
    /// [`LinearWarmup::new`].
    pub fn then(
        inner: Box<dyn LrScheduler + Send>,
        start_factor: f32,
        warmup: usize,
    ) -> Result<LinearWarmup> {
        let mut w = Self::linear(inner.lr_at(0), start_factor, 1.0, warmup)?;
        w.inner = Some(inner);
        Ok(w)
    }
}

impl LrScheduler for LinearWarmup {
    fn lr_at(&self, epoch: usize) -> f32 {
        if let Some(inner) = &self.inner
            && epoch >= self.warmup
        {
            return inner.lr_at(epoch - self.warmup);
        }
        let (s, e) = (self.start_factor as f64, self.end_factor as f64);
        let f = s + (e - s) * epoch.min(self.warmup) as f64 / self.warmup as f64;
        (self.base_lr as f64 * f) as f32
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
    /// Lower bound of the rate (0).
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

/// `ReduceLROnPlateau`: multiplies the rate by `factor` (not below `min_lr`) when the
/// metric passed to [`ReduceLrOnPlateau::step_with`] has not improved for more than
/// `patience` epochs, then waits `cooldown` epochs. A NaN metric never counts as an
/// improvement.
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    cfg: PlateauConfig,
    lr: f32,
    best: f64,
    num_bad: usize,
    cooldown_counter: usize,
    epoch: usize,
}

impl ReduceLrOnPlateau {
    /// Starts at `lr`. Returns `Err` for `factor` outside `[0, 1)`, a negative or non-finite
    /// threshold, `min_lr`, `eps` or `lr`.
    pub fn new(lr: f32, cfg: PlateauConfig) -> Result<ReduceLrOnPlateau> {
        let op = "ReduceLROnPlateau";
        check_base(op, lr)?;
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
            cfg,
            lr,
            best,
            num_bad: 0,
            cooldown_counter: 0,
            epoch: 0,
        })
    }

    /// The current rate.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Epochs seen so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The best metric seen so far (`inf` or `-inf` before any).
    pub fn best(&self) -> f64 {
        self.best
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

    /// Records one epoch's `metric` and returns the (possibly reduced) rate.
    pub fn step_with(&mut self, metric: f32) -> f32 {
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
        if self.num_bad > self.cfg.patience {
            let old = self.lr as f64;
            let new = (old * self.cfg.factor as f64).max(self.cfg.min_lr as f64);
            if old - new > self.cfg.eps as f64 {
                self.lr = new as f32;
            }
            self.cooldown_counter = self.cfg.cooldown;
            self.num_bad = 0;
        }
        self.lr
    }

    /// [`ReduceLrOnPlateau::step_with`], then sets the rate on `opt`; returns it.
    pub fn step_optimizer_with(&mut self, opt: &mut dyn Optimizer, metric: f32) -> f32 {
        let lr = self.step_with(metric);
        opt.set_lr(lr);
        lr
    }
}
