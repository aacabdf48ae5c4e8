//! Elementwise ops and their backward rules: unary maps, binary ops with broadcasting
//! (undone in backward by summing to the input's shape), scalar variants, where,
//! broadcast_to, and the constructors.

use cinder_device::{BinaryOp, Device, DeviceTensor, Result, UnaryOp};

use crate::tensor::{Ctx, Tensor, needs_graph};

/// `1 / sqrt(2 pi)`, for GELU's second derivative.
const INV_SQRT_2PI: f32 = 0.398_942_3;
/// `sqrt(2 / pi)` and the cubic coefficient of GELU's tanh approximation.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

impl Tensor {
    /// A leaf filled with `value`. Errors as [`DeviceTensor::full`].
    pub fn full(device: &Device, shape: &[usize], value: f32) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::full(device, shape, value)?))
    }
    /// A leaf of zeros. Errors as [`DeviceTensor::zeros`].
    pub fn zeros(device: &Device, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::zeros(device, shape)?))
    }
    /// A leaf of ones. Errors as [`DeviceTensor::ones`].
    pub fn ones(device: &Device, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::ones(device, shape)?))
    }
    /// Zeros of this tensor's shape (no grad). Errors as [`DeviceTensor::zeros_like`].
    pub fn zeros_like(&self) -> Result<Tensor> {
        Ok(Tensor::from_raw(self.raw().zeros_like()?))
    }
    /// Ones of this tensor's shape (no grad). Errors as [`DeviceTensor::ones_like`].
    pub fn ones_like(&self) -> Result<Tensor> {
        Ok(Tensor::from_raw(self.raw().ones_like()?))
    }

    /// Applies a unary op with parameters `a`, `b`, recording its backward rule. Ops whose
    /// derivative is zero wherever it exists (`sign`, `relu_mask`, `leaky_relu_grad`, `isnan`) give a
    /// tensor that does not require grad. Returns `Err` for `u32` tensors.
    pub(crate) fn unary(&self, op: UnaryOp, a: f32, b: f32) -> Result<Tensor> {
        let y = self.raw().unary(op, a, b)?;
        if matches!(
            op,
            UnaryOp::Sign | UnaryOp::ReluMask | UnaryOp::LeakyReluGrad | UnaryOp::IsNan
        ) || !needs_graph(&[self])
        {
            crate::mode::check_anomaly(op_name(op), &y);
            return Ok(Tensor::from_raw(y));
        }
        Ok(Tensor::from_op(op_name(op), y, &[self], move |c| {
            Ok(vec![Some(unary_backward(op, a, b, c)?)])
        }))
    }

    /// Applies a binary op with numpy broadcasting, recording its backward rule (gradients
    /// summed back to each operand's shape). Comparisons give a tensor that does not require
    /// grad. Returns `Err` when the shapes do not broadcast or for `u32` operands.
    pub(crate) fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        let y = self.raw().binary(op, &rhs.raw())?;
        if is_comparison(op) || !needs_graph(&[self, rhs]) {
            crate::mode::check_anomaly(op.name(), &y);
            return Ok(Tensor::from_raw(y));
        }
        Ok(Tensor::from_op(op.name(), y, &[self, rhs], move |c| {
            let (ga, gb) = binary_backward(op, c)?;
            let (a, b) = (c.input(0), c.input(1));
            let ga = ga
                .filter(|_| a.requires_grad())
                .map(|g| g.sum_to_shape(&a.shape()))
                .transpose()?;
            let gb = gb
                .filter(|_| b.requires_grad())
                .map(|g| g.sum_to_shape(&b.shape()))
                .transpose()?;
            Ok(vec![ga, gb])
        }))
    }

    /// `x op s` (or `s op x` when `scalar_first`), recording its backward rule. Returns
    /// `Err` for `u32` tensors.
    pub(crate) fn binary_scalar(&self, op: BinaryOp, s: f32, scalar_first: bool) -> Result<Tensor> {
        if matches!(
            op,
            BinaryOp::ReluBackward | BinaryOp::SigmoidBackward | BinaryOp::TanhBackward
        ) && needs_graph(&[self])
        {
            // Rare: differentiate through the tensor form.
            let st = Tensor::scalar(self.raw().device(), s)?;
            return if scalar_first {
                st.binary(op, self)
            } else {
                self.binary(op, &st)
            };
        }
        let y = self.raw().binary_scalar(op, s, scalar_first)?;
        if is_comparison(op) || !needs_graph(&[self]) {
            crate::mode::check_anomaly(op.name(), &y);
            return Ok(Tensor::from_raw(y));
        }
        Ok(Tensor::from_op(op.name(), y, &[self], move |c| {
            let (g, x, y) = (c.grad, c.input(0), c.output);
            let gx = match (op, scalar_first) {
                (BinaryOp::Add, _) => g.clone(),
                (BinaryOp::Sub, false) => g.clone(),
                (BinaryOp::Sub, true) => g.neg()?,
                (BinaryOp::Mul, _) => g.mul_scalar(s)?,
                (BinaryOp::Div, false) => g.mul_scalar(1.0 / s)?,
                // d(s/x) = -s/x^2 = -y/x
                (BinaryOp::Div, true) => g.mul(&y.div(x)?)?.neg()?,
                (BinaryOp::Pow, false) => g.mul(&x.powf(s - 1.0)?)?.mul_scalar(s)?,
                (BinaryOp::Pow, true) => g.mul(y)?.mul_scalar(s.ln())?,
                (BinaryOp::Maximum, _) => g.mul(&extremum_mask(&x.raw(), s, true)?)?,
                (BinaryOp::Minimum, _) => g.mul(&extremum_mask(&x.raw(), s, false)?)?,
                _ => unreachable!("comparisons and fused backward ops are handled above"),
            };
            Ok(vec![Some(gx)])
        }))
    }

    /// This tensor broadcast (copied) to `shape`; backward sums back. Errors as
    /// [`DeviceTensor::broadcast_to`].
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        let y = self.raw().broadcast_to(shape)?;
        Ok(Tensor::from_op("broadcast_to", y, &[self], |c| {
            Ok(vec![Some(c.grad.sum_to_shape(&c.input(0).shape())?)])
        }))
    }

    /// `cond != 0 ? a : b` with broadcasting of all three; `cond` gets no gradient. Errors
    /// as [`DeviceTensor::where_cond`].
    pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let y = DeviceTensor::where_cond(&cond.raw(), &a.raw(), &b.raw())?;
        Ok(Tensor::from_op("where", y, &[cond, a, b], |c| {
            // Selected, not multiplied by the mask, so an infinite gradient on one side does
            // not become NaN on the other (PyTorch's rule).
            let cond = Tensor::from_raw(c.input(0).raw());
            let zeros = c.grad.zeros_like()?;
            let ga = Tensor::where_cond(&cond, c.grad, &zeros)?;
            let gb = Tensor::where_cond(&cond, &zeros, c.grad)?;
            Ok(vec![
                None,
                Some(ga.sum_to_shape(&c.input(1).shape())?),
                Some(gb.sum_to_shape(&c.input(2).shape())?),
            ])
        }))
    }

    /// `s - x`. Returns `Err` for `u32` tensors.
    pub fn rsub_scalar(&self, s: f32) -> Result<Tensor> {
        self.binary_scalar(BinaryOp::Sub, s, true)
    }
    /// `s / x`. Returns `Err` for `u32` tensors.
    pub fn rdiv_scalar(&self, s: f32) -> Result<Tensor> {
        self.binary_scalar(BinaryOp::Div, s, true)
    }
    /// `s ^ x` (PyTorch's `pow(s, x)` with a scalar base; gradient `s^x ln s`). Returns
    /// `Err` for `u32` tensors.
    pub fn rpow_scalar(&self, s: f32) -> Result<Tensor> {
        self.binary_scalar(BinaryOp::Pow, s, true)
    }
    /// `x > 0 ? x : slope * x`. Returns `Err` for `u32` tensors.
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu, slope, 0.0)
    }
    /// Leaky relu's derivative `x > 0 ? 1 : slope` (no grad). Returns `Err` for `u32`
    /// tensors.
    pub(crate) fn leaky_relu_grad(&self, slope: f32) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyReluGrad, slope, 0.0)
    }
    /// `x > 0 ? x : alpha (e^x - 1)`. Returns `Err` for `u32` tensors.
    pub fn elu(&self, alpha: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Elu, alpha, 0.0)
    }
    /// ELU's derivative `x > 0 ? 1 : alpha e^x` (differentiable). Returns `Err` for `u32`
    /// tensors.
    pub(crate) fn elu_grad(&self, alpha: f32) -> Result<Tensor> {
        self.unary(UnaryOp::EluGrad, alpha, 0.0)
    }
    /// `min(max(x, lo), hi)` (NaN stays NaN); the gradient passes where `lo < x < hi`,
    /// strictly, and is 0 at the bounds and at NaN, as PyTorch's `clamp` with scalar bounds.
    /// Returns `Err` when `lo > hi` or for `u32` tensors.
    pub fn clamp(&self, lo: f32, hi: f32) -> Result<Tensor> {
        self.clamp_like("clamp", lo, hi, Bounds::Both)
    }

    /// `max(x, lo)` (NaN stays NaN), PyTorch's `clamp_min` / `clamp(min=lo)`: the gradient
    /// passes where `x > lo` (so also at `x = +inf`, unlike `clamp(lo, inf)`). Returns `Err`
    /// for `u32` tensors.
    pub fn clamp_min(&self, lo: f32) -> Result<Tensor> {
        self.clamp_like("clamp_min", lo, f32::INFINITY, Bounds::Min)
    }

    /// `min(x, hi)` (NaN stays NaN), PyTorch's `clamp_max`: the gradient passes where
    /// `x < hi`. Returns `Err` for `u32` tensors.
    pub fn clamp_max(&self, hi: f32) -> Result<Tensor> {
        self.clamp_like("clamp_max", f32::NEG_INFINITY, hi, Bounds::Max)
    }

    /// PyTorch's `hardtanh(x, min_val, max_val)` (defaults -1 and 1): `clamp` forward, with
    /// PyTorch's hardtanh gradient: 0 at and beyond the bounds, passed through at NaN.
    /// Returns `Err` when `lo > hi` or for `u32` tensors.
    pub fn hardtanh(&self, lo: f32, hi: f32) -> Result<Tensor> {
        self.clamp_like("hardtanh", lo, hi, Bounds::Hardtanh)
    }

    fn clamp_like(&self, name: &'static str, lo: f32, hi: f32, b: Bounds) -> Result<Tensor> {
        let y = self.raw().clamp(lo, hi)?;
        Ok(Tensor::from_op(name, y, &[self], move |c| {
            let d = c.input(0).raw();
            let mask = match b {
                // !(x <= lo) && !(x >= hi): NaN passes
                Bounds::Hardtanh => d
                    .le_scalar(lo)?
                    .rsub_scalar(1.0)?
                    .mul(&d.ge_scalar(hi)?.rsub_scalar(1.0)?)?,
                Bounds::Both => d.gt_scalar(lo)?.mul(&d.lt_scalar(hi)?)?,
                Bounds::Min => d.gt_scalar(lo)?,
                Bounds::Max => d.lt_scalar(hi)?,
            };
            Ok(vec![Some(c.grad.mul(&constant(mask))?)])
        }))
    }

    /// PReLU, `x > 0 ? x : w x`, with a learned slope `weight` of shape `[C]` (one per
    /// channel, dimension 1 of `x`) or `[1]` (shared), as PyTorch's `prelu`. Gradients reach
    /// `x` and `weight`. Returns `Err` when the weight's length is neither 1 nor the channel
    /// count, or for `u32` tensors.
    pub fn prelu(&self, weight: &Tensor) -> Result<Tensor> {
        let s = self.shape();
        let w = weight.shape();
        let c = w.iter().product::<usize>();
        let ok = w.len() == 1 && (c == 1 || (s.len() >= 2 && s[1] == c));
        if !ok {
            return Err(cinder_device::Error::shapes("prelu", &s, &w));
        }
        let mut ws = vec![1; s.len().max(1)];
        if c != 1 {
            ws[1] = c;
        }
        let wb = weight.reshape(&ws)?;
        let pos = Tensor::from_raw(self.raw().gt_scalar(0.0)?);
        Tensor::where_cond(&pos, self, &self.mul(&wb)?)
    }
    /// `x^e`. Returns `Err` for `u32` tensors.
    pub fn powf(&self, e: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Powf, e, 0.0)
    }
    /// `a * x + b`. Returns `Err` for `u32` tensors.
    pub fn affine(&self, a: f32, b: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Affine, a, b)
    }
}

/// Which clamp-like op a gradient mask is for (PyTorch's rules differ at the bounds and NaN).
#[derive(Clone, Copy)]
enum Bounds {
    /// `clamp(lo, hi)`: strictly inside.
    Both,
    /// `clamp_min(lo)`: above.
    Min,
    /// `clamp_max(hi)`: below.
    Max,
    /// `hardtanh(lo, hi)`: strictly inside, or NaN.
    Hardtanh,
}

fn is_comparison(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
    )
}

fn op_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "neg",
        UnaryOp::Abs => "abs",
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Rsqrt => "rsqrt",
        UnaryOp::Sin => "sin",
        UnaryOp::Cos => "cos",
        UnaryOp::Relu => "relu",
        UnaryOp::LeakyRelu => "leaky_relu",
        UnaryOp::Elu => "elu",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Gelu => "gelu",
        UnaryOp::GeluTanh => "gelu_tanh",
        UnaryOp::Silu => "silu",
        UnaryOp::Mish => "mish",
        UnaryOp::Hardsigmoid => "hardsigmoid",
        UnaryOp::Hardswish => "hardswish",
        UnaryOp::Softplus => "softplus",
        UnaryOp::Square => "square",
        UnaryOp::Clamp => "clamp",
        UnaryOp::Powf => "powf",
        UnaryOp::Recip => "recip",
        UnaryOp::ReluMask => "relu_mask",
        UnaryOp::LeakyReluGrad => "leaky_relu_grad",
        UnaryOp::EluGrad => "elu_grad",
        UnaryOp::GeluGrad => "gelu_grad",
        UnaryOp::SigmoidGradFromOutput => "sigmoid_grad_from_output",
        UnaryOp::TanhGradFromOutput => "tanh_grad_from_output",
        UnaryOp::Sign => "sign",
        UnaryOp::IsNan => "isnan",
        UnaryOp::Affine => "affine",
        UnaryOp::Lgamma => "lgamma",
        UnaryOp::Digamma => "digamma",
        UnaryOp::Trigamma => "trigamma",
    }
}

/// A constant (no-grad) tensor from device data.
fn constant(d: DeviceTensor) -> Tensor {
    Tensor::from_raw(d)
}

/// The share of the gradient `x` gets from `maximum(x, s)` (`max = true`) or `minimum`,
/// PyTorch's rule: 0.5 on ties, 0 where the other side wins, else 1 (so NaN takes it all).
fn extremum_mask(x: &DeviceTensor, s: f32, max: bool) -> Result<Tensor> {
    let loses = if max {
        x.lt_scalar(s)?
    } else {
        x.gt_scalar(s)?
    };
    let ties = x.eq_scalar(s)?.mul_scalar(0.5)?;
    Ok(constant(loses.add(&ties)?.rsub_scalar(1.0)?))
}

/// [`extremum_mask`] for two tensors: the shares of `a` and `b`.
fn extremum_masks(a: &DeviceTensor, b: &DeviceTensor, max: bool) -> Result<(Tensor, Tensor)> {
    let (a_loses, b_loses) = if max {
        (a.lt(b)?, a.gt(b)?)
    } else {
        (a.gt(b)?, a.lt(b)?)
    };
    let ties = a.eq(b)?.mul_scalar(0.5)?;
    Ok((
        constant(a_loses.add(&ties)?.rsub_scalar(1.0)?),
        constant(b_loses.add(&ties)?.rsub_scalar(1.0)?),
    ))
}

fn unary_backward(op: UnaryOp, a: f32, b: f32, c: &Ctx) -> Result<Tensor> {
    let (g, x, y) = (c.grad, c.input(0), c.output);
    Ok(match op {
        UnaryOp::Neg => g.neg()?,
        UnaryOp::Abs => g.mul(&x.sign()?)?,
        UnaryOp::Exp => g.mul(y)?,
        UnaryOp::Log => g.div(x)?,
        UnaryOp::Sqrt => g.div(y)?.mul_scalar(0.5)?,
        // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3 (PyTorch's form, which keeps the sign of
        // the infinity at -0)
        UnaryOp::Rsqrt => g.mul(&y.square()?.mul(y)?)?.mul_scalar(-0.5)?,
        UnaryOp::Sin => g.mul(&x.cos()?)?,
        UnaryOp::Cos => g.mul(&x.sin()?)?.neg()?,
        UnaryOp::Relu => g.relu_backward(x)?,
        UnaryOp::LeakyRelu => g.mul(&x.leaky_relu_grad(a)?)?,
        UnaryOp::Elu => g.mul(&x.elu_grad(a)?)?,
        UnaryOp::Sigmoid => g.sigmoid_backward(y)?,
        UnaryOp::Tanh => g.tanh_backward(y)?,
        UnaryOp::Gelu => g.mul(&x.gelu_grad()?)?,
        // 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2), t = tanh(k (x + c x^3))
        UnaryOp::GeluTanh => {
            let x2 = x.square()?;
            let t = x
                .mul(&x2.mul_scalar(GELU_C)?.add_scalar(1.0)?)?
                .mul_scalar(SQRT_2_OVER_PI)?
                .tanh()?;
            let slope = x2.affine(3.0 * GELU_C * SQRT_2_OVER_PI, SQRT_2_OVER_PI)?;
            let d = t.affine(0.5, 0.5)?.add(
                &x.mul(&t.square()?.rsub_scalar(1.0)?)?
                    .mul(&slope)?
                    .mul_scalar(0.5)?,
            )?;
            g.mul(&d)?
        }
        // s (1 + x (1 - s)), s = sigmoid(x)
        UnaryOp::Silu => {
            let sg = x.sigmoid()?;
            g.mul(&sg.add(&x.mul(&sg)?.mul(&sg.rsub_scalar(1.0)?)?)?)?
        }
        // t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x))
        UnaryOp::Mish => {
            let t = x.softplus()?.tanh()?;
            g.mul(&t.add(&x.mul(&x.sigmoid()?)?.mul(&t.square()?.rsub_scalar(1.0)?)?)?)?
        }
        // 1/6 strictly inside (-3, 3), else 0 (NaN included), as PyTorch
        UnaryOp::Hardsigmoid => {
            let d = x.raw();
            let inside = d.gt_scalar(-3.0)?.mul(&d.lt_scalar(3.0)?)?;
            g.mul(&constant(inside.mul_scalar(1.0 / 6.0)?))?
        }
        // PyTorch's: 0 at and below -3, x/3 + 1/2 strictly inside (-3, 3), 1 from 3 on and
        // at NaN
        UnaryOp::Hardswish => {
            let d = x.raw();
            let inside = constant(d.gt_scalar(-3.0)?.mul(&d.lt_scalar(3.0)?)?);
            let outside = constant(d.le_scalar(-3.0)?.rsub_scalar(1.0)?);
            g.mul(&Tensor::where_cond(
                &inside,
                &x.affine(1.0 / 3.0, 0.5)?,
                &outside,
            )?)?
        }
        UnaryOp::Softplus => g.mul(&x.sigmoid()?)?,
        UnaryOp::Square => g.mul(x)?.mul_scalar(2.0)?,
        UnaryOp::Clamp => {
            let d = x.raw();
            g.mul(&constant(d.gt_scalar(a)?.mul(&d.lt_scalar(b)?)?))?
        }
        UnaryOp::Powf => g.mul(&x.powf(a - 1.0)?)?.mul_scalar(a)?,
        UnaryOp::Recip => g.mul(&y.square()?)?.neg()?,
        // d/dx (x <= 0 ? a e^x : 1) = x <= 0 ? a e^x : 0
        UnaryOp::EluGrad => {
            let neg = constant(x.raw().le_scalar(0.0)?);
            g.mul(&x.exp()?.mul_scalar(a)?.mul(&neg)?)?
        }
        // gelu'' = phi(x) (2 - x^2)
        UnaryOp::GeluGrad => {
            let x2 = x.square()?;
            let phi = x2.mul_scalar(-0.5)?.exp()?.mul_scalar(INV_SQRT_2PI)?;
            g.mul(&phi.mul(&x2.rsub_scalar(2.0)?)?)?
        }
        // d y(1-y) = 1 - 2y;  d (1 - y^2) = -2y
        UnaryOp::SigmoidGradFromOutput => g.mul(&x.affine(-2.0, 1.0)?)?,
        UnaryOp::TanhGradFromOutput => g.mul(x)?.mul_scalar(-2.0)?,
        UnaryOp::Affine => g.mul_scalar(a)?,
        UnaryOp::Lgamma => g.mul(&x.digamma()?)?,
        UnaryOp::Digamma => g.mul(&x.trigamma()?)?,
        // polygamma(2, x) is not an op: the third derivative of log Gamma is refused
        UnaryOp::Trigamma => {
            return Err(cinder_device::Error::invalid(
                "trigamma backward",
                "the derivative of trigamma (polygamma(2, x)) is not implemented",
                &x.shape(),
            ));
        }
        UnaryOp::Sign | UnaryOp::ReluMask | UnaryOp::LeakyReluGrad | UnaryOp::IsNan => {
            unreachable!("no node is recorded for ops with zero derivative")
        }
    })
}

type Pair = (Option<Tensor>, Option<Tensor>);

/// Gradients of a binary op before broadcasting is undone.
fn binary_backward(op: BinaryOp, c: &Ctx) -> Result<Pair> {
    let (g, a, b, y) = (c.grad, c.input(0), c.input(1), c.output);
    let need_b = b.requires_grad();
    Ok(match op {
        BinaryOp::Add => (Some(g.clone()), Some(g.clone())),
        BinaryOp::Sub => (Some(g.clone()), need_b.then(|| g.neg()).transpose()?),
        BinaryOp::Mul => (Some(g.mul(b)?), need_b.then(|| g.mul(a)).transpose()?),
        BinaryOp::Div => {
            let ga = g.div(b)?;
            let gb = need_b.then(|| ga.mul(y)?.neg()).transpose()?;
            (Some(ga), gb)
        }
        BinaryOp::Pow => {
            // d a^b / da = b a^(b-1);  d a^b / db = a^b ln a
            let ga = g.mul(&b.mul(&a.pow(&b.sub_scalar(1.0)?)?)?)?;
            let gb = need_b.then(|| g.mul(&y.mul(&a.log()?)?)).transpose()?;
            (Some(ga), gb)
        }
        // PyTorch's rule: ties split, the loser gets 0, NaN on either side passes to both
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let (ma, mb) = extremum_masks(&a.raw(), &b.raw(), op == BinaryOp::Maximum)?;
            (Some(g.mul(&ma)?), Some(g.mul(&mb)?))
        }
        // out = g * (x > 0): linear in g, zero derivative in x
        BinaryOp::ReluBackward => (Some(c.grad.relu_backward(b)?), None),
        // out = g y (1 - y):  d/dg = y (1 - y);  d/dy = g (1 - 2y)
        BinaryOp::SigmoidBackward => (
            Some(c.grad.sigmoid_backward(b)?),
            Some(c.grad.mul(a)?.mul(&b.affine(-2.0, 1.0)?)?),
        ),
        // out = g (1 - y^2):  d/dg = 1 - y^2;  d/dy = -2 g y
        BinaryOp::TanhBackward => (
            Some(c.grad.tanh_backward(b)?),
            Some(c.grad.mul(a)?.mul(b)?.mul_scalar(-2.0)?),
        ),
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            unreachable!("comparisons record no node")
        }
    })
}

macro_rules! unary_methods {
    ($($vis:vis fn { $($(#[$m:meta])* $name:ident => $op:ident),* $(,)? })*) => {
        impl Tensor {
            $($($(#[$m])* #[allow(dead_code)] $vis fn $name(&self) -> Result<Tensor> { self.unary(UnaryOp::$op, 0.0, 0.0) })*)*
        }
    };
}

// The derivatives stay inside this crate (users differentiate with backward()); the table
// lists a few that no rule here happens to need.
cinder_device::unary_op_table!(unary_methods, pub(crate));

macro_rules! binary_methods {
    (
        pub fn { $($(#[$m:meta])* $name:ident, $sname:ident => $op:ident),* $(,)? }
        $bvis:vis fn { $($(#[$bm:meta])* $bname:ident => $bop:ident),* $(,)? }
    ) => {
        impl Tensor {
            $(
                $(#[$m])* pub fn $name(&self, rhs: &Tensor) -> Result<Tensor> { self.binary(BinaryOp::$op, rhs) }
                $(#[$m])* #[doc = "Scalar right operand."] pub fn $sname(&self, s: f32) -> Result<Tensor> { self.binary_scalar(BinaryOp::$op, s, false) }
            )*
            $(
                $(#[$bm])* #[doc = "Fused, differentiable in `self`."] $bvis fn $bname(&self, rhs: &Tensor) -> Result<Tensor> { self.binary(BinaryOp::$bop, rhs) }
            )*
        }
    };
}

cinder_device::binary_op_table!(binary_methods, pub(crate));
