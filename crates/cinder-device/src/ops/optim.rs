//! Fused optimizer updates (`shaders/optim.wgsl`): one dispatch per parameter tensor per
//! step updates the parameter and its optimizer state buffers in place, with PyTorch's
//! formulas. The step's scalars (learning rate, bias corrections) travel as immediates, so
//! a step compiles nothing after the first and reads nothing back.
//!
//! Each method is called on the parameter's data and takes the gradient and the state
//! buffers, all `f32` tensors of the parameter's shape in distinct buffers. `step` is the
//! 1-based number of the step being taken; on step 1 the state buffers are not read (they
//! may be fresh `DeviceTensor::uninit` buffers) and are taken at their initial values
//! (SGD's momentum buffer starts as the gradient, as PyTorch).

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_elems};
use crate::tensor::{DType, DeviceTensor};

/// The flag bits optim.wgsl repeats (see [`super::Contract`]).
pub(crate) fn contracts() -> Vec<super::Contract> {
    [
        ("FIRST", FIRST),
        ("NESTEROV", NESTEROV),
        ("DECOUPLED", DECOUPLED),
        ("MAXIMIZE", MAXIMIZE),
        ("CLIP_INF", CLIP_INF),
    ]
    .map(|(name, v)| super::Contract {
        family: "optim",
        name,
        value: v as u64,
    })
    .to_vec()
}

const FIRST: u32 = 1;
const NESTEROV: u32 = 2;
const DECOUPLED: u32 = 4;
const MAXIMIZE: u32 = 8;
const CLIP_INF: u32 = 16;

/// Hyperparameters of one SGD step (`torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 disables the momentum buffer).
    pub momentum: f32,
    /// Dampening of the momentum.
    pub dampening: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    /// Ascend the objective instead of descending it.
    pub maximize: bool,
    /// 1-based number of this step; on step 1 the momentum buffer is set to the gradient.
    pub step: u64,
}

/// Hyperparameters of one Adam or AdamW step (`torch.optim.Adam`, `torch.optim.AdamW`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the denominator outside the square root, as PyTorch.
    pub eps: f32,
    /// Weight decay: added to the gradient (Adam) or decoupled (AdamW).
    pub weight_decay: f32,
    /// AdamW's decoupled decay `p <- p (1 - lr wd)` instead of the L2 gradient term.
    pub decoupled: bool,
    /// Ascend the objective instead of descending it.
    pub maximize: bool,
    /// 1-based number of this step (bias corrections use it).
    pub step: u64,
}

/// Hyperparameters of one RMSprop step (`torch.optim.RMSprop`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmspropStep {
    /// Learning rate.
    pub lr: f32,
    /// Smoothing constant of the squared-gradient average.
    pub alpha: f32,
    /// Added to the denominator outside the square root.
    pub eps: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Momentum factor (the buffer is used when a momentum buffer is passed).
    pub momentum: f32,
    /// Ascend the objective instead of descending it.
    pub maximize: bool,
    /// 1-based number of this step; on step 1 every state buffer starts at zero.
    pub step: u64,
}

/// Hyperparameters of one Adagrad step (`torch.optim.Adagrad`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradStep {
    /// Learning rate (decayed to `lr / (1 + (step - 1) lr_decay)`).
    pub lr: f32,
    /// Learning-rate decay.
    pub lr_decay: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Initial value of the squared-gradient sum.
    pub initial_accumulator_value: f32,
    /// Added to the denominator outside the square root.
    pub eps: f32,
    /// Ascend the objective instead of descending it.
    pub maximize: bool,
    /// 1-based number of this step; on step 1 the sum starts at `initial_accumulator_value`.
    pub step: u64,
}

fn kernel(entry: &'static str, states: u32) -> Kernel {
    Kernel::new("optim", entry, 1, 1 + states)
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![
        kernel("sgd", 0),
        kernel("sgd_momentum", 1),
        kernel("adam", 2),
        kernel("adam_amsgrad", 3),
        kernel("rmsprop", 1),
        kernel("rmsprop_momentum", 2),
        kernel("rmsprop_centered", 2),
        kernel("rmsprop_centered_momentum", 3),
        kernel("adagrad", 1),
        clip_kernel(),
    ]
}

fn clip_kernel() -> Kernel {
    Kernel::new("optim", "clip_norm_coef", 1, 2).with_workgroup((1, 1, 1))
}

fn check_finite(op: &'static str, shape: &[usize], vals: &[(&str, f32)]) -> Result<()> {
    for (name, v) in vals {
        if !v.is_finite() {
            return Err(Error::invalid(
                op,
                format!("{name} = {v} is not finite"),
                shape,
            ));
        }
    }
    Ok(())
}

/// `Err` naming the first of `vals` that is negative.
fn check_nonneg(op: &'static str, shape: &[usize], vals: &[(&str, f32)]) -> Result<()> {
    for &(name, v) in vals {
        check_range(op, shape, v >= 0.0, format!("{name} {v} < 0"))?;
    }
    Ok(())
}

fn check_range(op: &'static str, shape: &[usize], ok: bool, msg: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(op, msg, shape))
    }
}

/// Checks dtypes, shapes, distinct buffers and the step number; returns the element count.
fn check_tensors(
    op: &'static str,
    param: &DeviceTensor,
    grad: &DeviceTensor,
    states: &[&DeviceTensor],
    step: u64,
) -> Result<usize> {
    let all: Vec<&DeviceTensor> = [param, grad]
        .into_iter()
        .chain(states.iter().copied())
        .collect();
    for t in &all {
        t.expect_dtype(op, DType::F32)?;
        if t.shape() != param.shape() {
            return Err(Error::shapes(op, param.shape(), t.shape()));
        }
    }
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.same_storage(b) {
                return Err(Error::invalid(
                    op,
                    "parameter, gradient and state tensors must be distinct buffers",
                    param.shape(),
                ));
            }
        }
    }
    check_range(
        op,
        param.shape(),
        step >= 1,
        format!("step {step} is not 1-based"),
    )?;
    Ok(param.numel())
}

fn flags(step: u64, maximize: bool) -> u32 {
    let mut f = 0;
    if step == 1 {
        f |= FIRST;
    }
    if maximize {
        f |= MAXIMIZE;
    }
    f
}

#[allow(clippy::too_many_arguments)]
fn params(
    n: usize,
    flags: u32,
    lr: f32,
    wd: f32,
    a: f32,
    b: f32,
    c: f32,
    d: f32,
    e: f32,
) -> Params {
    Params::new()
        .usize(n)
        .u32(flags)
        .f32(lr)
        .f32(wd)
        .f32(a)
        .f32(b)
        .f32(c)
        .f32(d)
        .f32(e)
}

fn run(
    entry: &'static str,
    param: &DeviceTensor,
    grad: &DeviceTensor,
    states: &[&DeviceTensor],
    p: &Params,
) -> Result<()> {
    let mut outs: Vec<&DeviceTensor> = vec![param];
    outs.extend_from_slice(states);
    let n = param.numel();
    param.device().dispatch(
        &kernel(entry, states.len() as u32),
        &[grad],
        &outs,
        p,
        grid_elems(n)?,
    )
}

impl DeviceTensor {
    /// One SGD step on this parameter, in place (one dispatch): with `g = grad + wd * p`,
    /// `buf = momentum * buf + (1 - dampening) * g` (`buf = g` on step 1), `g = g +
    /// momentum * buf` (Nesterov) or `g = buf`, then `p -= lr * g`. `momentum_buf` must be
    /// given exactly when `momentum != 0`. Returns `Err` for mismatched shapes or dtypes,
    /// shared buffers, `step == 0`, negative or non-finite hyperparameters, or Nesterov
    /// without momentum or with dampening.
    pub fn sgd_step_(
        &self,
        grad: &DeviceTensor,
        momentum_buf: Option<&DeviceTensor>,
        h: &SgdStep,
    ) -> Result<()> {
        let op = "sgd_step";
        let states: Vec<&DeviceTensor> = momentum_buf.into_iter().collect();
        let n = check_tensors(op, self, grad, &states, h.step)?;
        let sh = self.shape();
        check_finite(
            op,
            sh,
            &[
                ("lr", h.lr),
                ("momentum", h.momentum),
                ("dampening", h.dampening),
                ("weight_decay", h.weight_decay),
            ],
        )?;
        check_nonneg(
            op,
            sh,
            &[
                ("lr", h.lr),
                ("momentum", h.momentum),
                ("weight_decay", h.weight_decay),
            ],
        )?;
        check_range(
            op,
            sh,
            !h.nesterov || (h.momentum > 0.0 && h.dampening == 0.0),
            "Nesterov momentum requires a momentum and zero dampening".into(),
        )?;
        check_range(
            op,
            sh,
            (h.momentum != 0.0) == momentum_buf.is_some(),
            "a momentum buffer is needed exactly when momentum != 0".into(),
        )?;
        let mut f = flags(h.step, h.maximize);
        if h.nesterov {
            f |= NESTEROV;
        }
        let p = params(
            n,
            f,
            h.lr,
            h.weight_decay,
            h.momentum,
            h.dampening,
            0.0,
            0.0,
            0.0,
        );
        let entry = if momentum_buf.is_some() {
            "sgd_momentum"
        } else {
            "sgd"
        };
        run(entry, self, grad, &states, &p)
    }

    /// One Adam (or AdamW, when `h.decoupled`) step on this parameter, in place (one
    /// dispatch), updating `exp_avg`, `exp_avg_sq` and, for AMSGrad, `max_exp_avg_sq`:
    /// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`, `vmax = max(vmax, v)`, `p -= lr /
    /// (1 - b1^t) * m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)`; weight decay adds `wd *
    /// p` to `g` (Adam) or first scales `p` by `1 - lr wd` (AdamW). Returns `Err` for
    /// mismatched shapes or dtypes, shared buffers, `step == 0`, betas outside `[0, 1)`,
    /// negative lr, eps or weight decay, or non-finite hyperparameters.
    pub fn adam_step_(
        &self,
        grad: &DeviceTensor,
        exp_avg: &DeviceTensor,
        exp_avg_sq: &DeviceTensor,
        max_exp_avg_sq: Option<&DeviceTensor>,
        h: &AdamStep,
    ) -> Result<()> {
        let op = "adam_step";
        let mut states = vec![exp_avg, exp_avg_sq];
        states.extend(max_exp_avg_sq);
        let n = check_tensors(op, self, grad, &states, h.step)?;
        let sh = self.shape();
        check_finite(
            op,
            sh,
            &[
                ("lr", h.lr),
                ("beta1", h.beta1),
                ("beta2", h.beta2),
                ("eps", h.eps),
                ("weight_decay", h.weight_decay),
            ],
        )?;
        check_nonneg(op, sh, &[("lr", h.lr), ("eps", h.eps)])?;
        for (name, b) in [("beta1", h.beta1), ("beta2", h.beta2)] {
            check_range(
                op,
                sh,
                (0.0..1.0).contains(&b),
                format!("{name} {b} not in [0, 1)"),
            )?;
        }
        check_nonneg(op, sh, &[("weight_decay", h.weight_decay)])?;
        let t = h.step.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - (h.beta1 as f64).powi(t);
        let bc2 = 1.0 - (h.beta2 as f64).powi(t);
        let step_size = (h.lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let mut f = flags(h.step, h.maximize);
        if h.decoupled {
            f |= DECOUPLED;
        }
        let p = params(
            n,
            f,
            h.lr,
            h.weight_decay,
            h.beta1,
            h.beta2,
            h.eps,
            step_size,
            bc2_sqrt,
        );
        let entry = if max_exp_avg_sq.is_some() {
            "adam_amsgrad"
        } else {
            "adam"
        };
        run(entry, self, grad, &states, &p)
    }

    /// One RMSprop step on this parameter, in place (one dispatch): `v = alpha v + (1 -
    /// alpha) g^2` (with `g = grad + wd * p`); centered (when `grad_avg` is given): `ga =
    /// alpha ga + (1 - alpha) g` and the denominator is `sqrt(v - ga^2) + eps`, else
    /// `sqrt(v) + eps`; with a momentum buffer `buf = momentum buf + g / denom`, `p -= lr
    /// buf`, else `p -= lr g / denom`. The momentum buffer must be given exactly when
    /// `momentum > 0`. Returns `Err` for mismatched shapes or dtypes, shared buffers, `step
    /// == 0`, negative or non-finite hyperparameters.
    pub fn rmsprop_step_(
        &self,
        grad: &DeviceTensor,
        square_avg: &DeviceTensor,
        grad_avg: Option<&DeviceTensor>,
        momentum_buf: Option<&DeviceTensor>,
        h: &RmspropStep,
    ) -> Result<()> {
        let op = "rmsprop_step";
        let mut states = vec![square_avg];
        states.extend(grad_avg);
        states.extend(momentum_buf);
        let n = check_tensors(op, self, grad, &states, h.step)?;
        let sh = self.shape();
        let vals = [
            ("lr", h.lr),
            ("alpha", h.alpha),
            ("eps", h.eps),
            ("weight_decay", h.weight_decay),
            ("momentum", h.momentum),
        ];
        check_finite(op, sh, &vals)?;
        check_nonneg(op, sh, &vals)?;
        check_range(
            op,
            sh,
            (h.momentum > 0.0) == momentum_buf.is_some(),
            "a momentum buffer is needed exactly when momentum > 0".into(),
        )?;
        let f = flags(h.step, h.maximize);
        let p = params(
            n,
            f,
            h.lr,
            h.weight_decay,
            h.alpha,
            h.eps,
            h.momentum,
            0.0,
            0.0,
        );
        let entry = match (grad_avg.is_some(), momentum_buf.is_some()) {
            (false, false) => "rmsprop",
            (false, true) => "rmsprop_momentum",
            (true, false) => "rmsprop_centered",
            (true, true) => "rmsprop_centered_momentum",
        };
        run(entry, self, grad, &states, &p)
    }

    /// One Adagrad step on this parameter, in place (one dispatch): with `clr = lr / (1 +
    /// (t - 1) lr_decay)` and `g = grad + wd * p`, `sum += g^2`, `p -= clr g / (sqrt(sum) +
    /// eps)`; the sum starts at `initial_accumulator_value`. Returns `Err` for mismatched
    /// shapes or dtypes, shared buffers, `step == 0`, negative or non-finite
    /// hyperparameters.
    pub fn adagrad_step_(
        &self,
        grad: &DeviceTensor,
        sum: &DeviceTensor,
        h: &AdagradStep,
    ) -> Result<()> {
        let op = "adagrad_step";
        let n = check_tensors(op, self, grad, &[sum], h.step)?;
        let sh = self.shape();
        let vals = [
            ("lr", h.lr),
            ("lr_decay", h.lr_decay),
            ("weight_decay", h.weight_decay),
            ("initial_accumulator_value", h.initial_accumulator_value),
            ("eps", h.eps),
        ];
        check_finite(op, sh, &vals)?;
        check_nonneg(op, sh, &vals)?;
        let clr = (h.lr as f64 / (1.0 + (h.step - 1) as f64 * h.lr_decay as f64)) as f32;
        let f = flags(h.step, h.maximize);
        let p = params(
            n,
            f,
            clr,
            h.weight_decay,
            h.eps,
            h.initial_accumulator_value,
            0.0,
            0.0,
            0.0,
        );
        run("adagrad", self, grad, &[sum], &p)
    }

    /// The last step of gradient clipping by norm (`clip_grad_norm_`), one dispatch of one
    /// invocation: from `acc`, the sum over every gradient of `|g|^p` (finite `norm_type`
    /// `p`) or the largest `|g|` (`p = inf`), NaN when a gradient holds one, returns the
    /// total norm `acc^(1/p)` and the coefficient `min(max_norm / (norm + 1e-6), 1)`, which
    /// is NaN when the norm is (as PyTorch's `clamp`). Both are shape-`[]` tensors; nothing
    /// is read back. Returns `Err` when `acc` is not a one-element f32 tensor, or
    /// `norm_type` is not positive (`+inf` is allowed) or `max_norm` is negative or not
    /// finite.
    pub fn clip_norm_coef(
        acc: &DeviceTensor,
        norm_type: f32,
        max_norm: f32,
    ) -> Result<(DeviceTensor, DeviceTensor)> {
        let op = "clip_norm_coef";
        acc.expect_dtype(op, DType::F32)?;
        if acc.numel() != 1 {
            return Err(Error::invalid(op, "expected one element", acc.shape()));
        }
        check_range(
            op,
            &[],
            norm_type > 0.0,
            format!("norm_type {norm_type} must be > 0 (or inf)"),
        )?;
        check_finite(op, &[], &[("max_norm", max_norm)])?;
        check_nonneg(op, &[], &[("max_norm", max_norm)])?;
        let inf = norm_type == f32::INFINITY;
        let inv = if inf {
            0.0
        } else {
            (1.0 / norm_type as f64) as f32
        };
        let p = params(
            1,
            if inf { CLIP_INF } else { 0 },
            max_norm,
            0.0,
            norm_type,
            inv,
            0.0,
            0.0,
            0.0,
        );
        let device = acc.device();
        let norm = DeviceTensor::uninit_for(op, device, &[], DType::F32)?;
        let coef = DeviceTensor::uninit_for(op, device, &[], DType::F32)?;
        device.dispatch(&clip_kernel(), &[acc], &[&norm, &coef], &p, (1, 1, 1))?;
        Ok((norm, coef))
    }
}
