//! Elementwise ops: unary maps, binary ops with numpy broadcasting, scalar variants, where,
//! fill. Kernels in `shaders/elementwise.wgsl`; each op is one line in a table below.

use crate::Device;
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_elems};
use crate::shape::{MAX_DIMS, broadcast_shapes, broadcast_strides, coalesce};
use crate::tensor::{DType, DeviceTensor};

/// A unary map. Ops with parameters read them as `a` and `b` in their expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `|x|`
    Abs,
    /// `e^x`
    Exp,
    /// natural log (`-inf` at 0, NaN below)
    Log,
    /// square root
    Sqrt,
    /// `1 / sqrt(x)`
    Rsqrt,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// `max(x, 0)`; NaN stays NaN (PyTorch)
    Relu,
    /// `x > 0 ? x : a * x`
    LeakyRelu,
    /// `x > 0 ? x : a * (e^x - 1)`
    Elu,
    /// logistic sigmoid, stable for large |x|
    Sigmoid,
    /// hyperbolic tangent, stable for large |x|
    Tanh,
    /// exact (erf) GELU, as PyTorch's default
    Gelu,
    /// GELU with the tanh approximation, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
    /// (PyTorch's `approximate="tanh"`)
    GeluTanh,
    /// SiLU (swish): `x * sigmoid(x)`
    Silu,
    /// Mish: `x * tanh(softplus(x))`
    Mish,
    /// Hardsigmoid: `clamp(x / 6 + 1/2, 0, 1)`
    Hardsigmoid,
    /// Hardswish: `x * hardsigmoid(x)`
    Hardswish,
    /// `log(1 + e^x)`, stable
    Softplus,
    /// `x * x`
    Square,
    /// `min(max(x, a), b)`; NaN when `x`, `a` or `b` is NaN (PyTorch)
    Clamp,
    /// `x^a` with PyTorch's rules for negative bases
    Powf,
    /// `1 / x`
    Recip,
    /// derivative of relu as PyTorch takes it: `x <= 0 ? 0 : 1` (1 at NaN)
    ReluMask,
    /// derivative of leaky relu: `x > 0 ? 1 : a`
    LeakyReluGrad,
    /// derivative of elu: `x <= 0 ? a * e^x : 1` (1 at NaN, as PyTorch)
    EluGrad,
    /// derivative of gelu
    GeluGrad,
    /// derivative of sigmoid from its output y: `y * (1 - y)`
    SigmoidGradFromOutput,
    /// derivative of tanh from its output y: `1 - y^2`
    TanhGradFromOutput,
    /// sign: -1, 0 or 1 (0 at NaN, as PyTorch)
    Sign,
    /// 1 where `x` is NaN, else 0
    IsNan,
    /// `a * x + b` (affine, used for scaling and shifting)
    Affine,
    /// `log |Gamma(x)|` (`+inf` at 0, the negative integers and `+-inf`), as `torch.lgamma`
    Lgamma,
    /// digamma `psi(x) = d/dx log Gamma(x)` (`-inf` at +0, `+inf` at -0, NaN at the negative
    /// integers and `-inf`), as `torch.digamma`
    Digamma,
    /// trigamma `psi'(x)`, digamma's derivative, as `torch.polygamma(1, x)`
    Trigamma,
}

impl UnaryOp {
    /// Every unary op.
    pub const ALL: [UnaryOp; 36] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu,
        UnaryOp::Elu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Gelu,
        UnaryOp::GeluTanh,
        UnaryOp::Silu,
        UnaryOp::Mish,
        UnaryOp::Hardsigmoid,
        UnaryOp::Hardswish,
        UnaryOp::Softplus,
        UnaryOp::Square,
        UnaryOp::Clamp,
        UnaryOp::Powf,
        UnaryOp::Recip,
        UnaryOp::ReluMask,
        UnaryOp::LeakyReluGrad,
        UnaryOp::EluGrad,
        UnaryOp::GeluGrad,
        UnaryOp::SigmoidGradFromOutput,
        UnaryOp::TanhGradFromOutput,
        UnaryOp::Sign,
        UnaryOp::IsNan,
        UnaryOp::Affine,
        UnaryOp::Lgamma,
        UnaryOp::Digamma,
        UnaryOp::Trigamma,
    ];

    /// The WGSL expression of the op in `x`, `a`, `b`.
    pub fn expr(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-x",
            UnaryOp::Abs => "abs(x)",
            UnaryOp::Exp => "exp(x)",
            UnaryOp::Log => "log(x)",
            UnaryOp::Sqrt => "sqrt(x)",
            UnaryOp::Rsqrt => "inverseSqrt(x)",
            UnaryOp::Sin => "sin(x)",
            UnaryOp::Cos => "cos(x)",
            UnaryOp::Relu => "select(max(x, 0.0), x, is_nan(x))",
            UnaryOp::LeakyRelu => "select(a * x, x, x > 0.0)",
            UnaryOp::Elu => "select(a * (exp(x) - 1.0), x, x > 0.0)",
            UnaryOp::Sigmoid => "sigmoid(x)",
            UnaryOp::Tanh => "tanh_stable(x)",
            UnaryOp::Gelu => "gelu(x)",
            UnaryOp::GeluTanh => "gelu_tanh(x)",
            UnaryOp::Silu => "x * sigmoid(x)",
            UnaryOp::Mish => "x * tanh_stable(softplus(x))",
            UnaryOp::Hardsigmoid => "clamp_nan(x / 6.0 + 0.5, 0.0, 1.0)",
            UnaryOp::Hardswish => "x * clamp_nan(x / 6.0 + 0.5, 0.0, 1.0)",
            UnaryOp::Softplus => "softplus(x)",
            UnaryOp::Square => "x * x",
            UnaryOp::Clamp => "clamp_nan(x, a, b)",
            UnaryOp::Powf => "powf(x, a)",
            UnaryOp::Recip => "1.0 / x",
            UnaryOp::ReluMask => "select(1.0, 0.0, x <= 0.0)",
            UnaryOp::LeakyReluGrad => "select(a, 1.0, x > 0.0)",
            UnaryOp::EluGrad => "select(1.0, a * exp(x), x <= 0.0)",
            UnaryOp::GeluGrad => "gelu_grad(x)",
            UnaryOp::SigmoidGradFromOutput => "x * (1.0 - x)",
            UnaryOp::TanhGradFromOutput => "1.0 - x * x",
            UnaryOp::Sign => "sign_nan(x)",
            UnaryOp::IsNan => "b2f(is_nan(x))",
            UnaryOp::Affine => "a * x + b",
            UnaryOp::Lgamma => "lgamma(x)",
            UnaryOp::Digamma => "digamma(x)",
            UnaryOp::Trigamma => "trigamma(x)",
        }
    }

    /// A plain-Rust reference of the op, for tests and CPU fallbacks.
    pub fn reference(self, x: f32, a: f32, b: f32) -> f32 {
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        let erf = |x: f32| libm_erf(x as f64) as f32;
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => 1.0 / x.sqrt(),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Relu => max_nan(x, 0.0),
            UnaryOp::LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    a * x
                }
            }
            UnaryOp::Elu => {
                if x > 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            UnaryOp::Sigmoid => sig(x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Gelu => 0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2)),
            UnaryOp::GeluTanh => {
                let k = (2.0 / std::f32::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            }
            UnaryOp::Silu => x * sig(x),
            UnaryOp::Mish => x * (max_nan(x, 0.0) + (-x.abs()).exp().ln_1p()).tanh(),
            UnaryOp::Hardsigmoid => clamp_nan(x / 6.0 + 0.5, 0.0, 1.0),
            UnaryOp::Hardswish => x * clamp_nan(x / 6.0 + 0.5, 0.0, 1.0),
            UnaryOp::Softplus => max_nan(x, 0.0) + (-x.abs()).exp().ln_1p(),
            UnaryOp::Square => x * x,
            UnaryOp::Clamp => clamp_nan(x, a, b),
            UnaryOp::Powf => x.powf(a),
            UnaryOp::Recip => 1.0 / x,
            UnaryOp::ReluMask => {
                if x <= 0.0 {
                    0.0
                } else {
                    1.0
                }
            }
            UnaryOp::LeakyReluGrad => {
                if x > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            UnaryOp::EluGrad => {
                if x <= 0.0 {
                    a * x.exp()
                } else {
                    1.0
                }
            }
            UnaryOp::GeluGrad => {
                0.5 * (1.0 + erf(x / std::f32::consts::SQRT_2))
                    + x * (-0.5 * x * x).exp() / (2.0 * std::f32::consts::PI).sqrt()
            }
            UnaryOp::SigmoidGradFromOutput => x * (1.0 - x),
            UnaryOp::TanhGradFromOutput => 1.0 - x * x,
            UnaryOp::IsNan => {
                if x.is_nan() {
                    1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Affine => a * x + b,
            UnaryOp::Lgamma => lgamma_f64(x as f64) as f32,
            UnaryOp::Digamma => digamma_f64(x as f64) as f32,
            UnaryOp::Trigamma => trigamma_f64(x as f64) as f32,
        }
    }
}

/// `max(a, b)`, NaN when either is (PyTorch's `maximum`; `f32::max` drops NaN).
pub fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// `min(a, b)`, NaN when either is (PyTorch's `minimum`; `f32::min` drops NaN).
pub fn min_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

/// `min(max(x, lo), hi)`, NaN when any of the three is NaN (PyTorch's `clamp`).
pub fn clamp_nan(x: f32, lo: f32, hi: f32) -> f32 {
    if x.is_nan() || lo.is_nan() || hi.is_nan() {
        f32::NAN
    } else {
        x.max(lo).min(hi)
    }
}

/// `log |Gamma(x)|` in f64 (reference for [`UnaryOp::Lgamma`]): `+inf` at the poles (0 and
/// the negative integers) and at `+-inf`; the recurrence up to `x >= 10`, then Stirling's
/// series; reflection below 0.
pub fn lgamma_f64(x: f64) -> f64 {
    use std::f64::consts::PI;
    if x.is_nan() {
        return x;
    }
    if x.is_infinite() || (x <= 0.0 && x == x.trunc()) {
        return f64::INFINITY;
    }
    if x < 0.0 {
        let s = (PI * (x - x.trunc())).sin().abs();
        return (PI / s).ln() - lgamma_f64(1.0 - x);
    }
    let (mut x, mut shift) = (x, 0.0);
    while x < 10.0 {
        shift += x.ln();
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    let series = (1.0 / 12.0 - z * (1.0 / 360.0 - z * (1.0 / 1260.0 - z / 1680.0))) / x;
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * PI).ln() + series - shift
}

/// Digamma in f64 (reference for [`UnaryOp::Digamma`]), PyTorch's conventions: `-inf` at +0,
/// `+inf` at -0, NaN at the negative integers and `-inf`.
pub fn digamma_f64(x: f64) -> f64 {
    use std::f64::consts::PI;
    if x.is_nan() {
        return x;
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        };
    }
    if x < 0.0 {
        if x == x.trunc() {
            return f64::NAN;
        }
        return digamma_f64(1.0 - x) - PI / (PI * (x - x.trunc())).tan();
    }
    if x.is_infinite() {
        return x;
    }
    let (mut x, mut r) = (x, 0.0);
    while x < 10.0 {
        r -= 1.0 / x;
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    let tail = z
        * (1.0 / 12.0
            - z * (1.0 / 120.0 - z * (1.0 / 252.0 - z * (1.0 / 240.0 - z * (1.0 / 132.0)))));
    r + x.ln() - 0.5 / x - tail
}

/// Trigamma in f64 (reference for [`UnaryOp::Trigamma`]): `+inf` at 0 and the negative
/// integers, 0 at `+inf`, NaN at `-inf`.
pub fn trigamma_f64(x: f64) -> f64 {
    use std::f64::consts::PI;
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if x <= 0.0 && x == x.trunc() {
        return f64::INFINITY;
    }
    if x < 0.5 {
        let s = (PI * (x - x.trunc())).sin();
        return PI * PI / (s * s) - trigamma_f64(1.0 - x);
    }
    let (mut x, mut r) = (x, 0.0);
    while x < 10.0 {
        r += 1.0 / (x * x);
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    r + (1.0 + 1.0 / (2.0 * x) + z * (1.0 / 6.0 - z * (1.0 / 30.0 - z * (1.0 / 42.0 - z / 30.0))))
        / x
}

/// erf in f64 (Abramowitz & Stegun 7.1.26 refined by one Newton step would be overkill:
/// a series for small |x| and the continued fraction's complement otherwise).
fn libm_erf(x: f64) -> f64 {
    // High-accuracy erf via the complementary error function (W. J. Cody style rational
    // approximation is long; a 1e-12 series/asymptotic split is enough for tests).
    let ax = x.abs();
    let r = if ax < 3.0 {
        let mut sum = ax;
        let mut term = ax;
        let x2 = ax * ax;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -x2 / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc continued fraction (Lentz), accurate for ax >= 3.
        let mut f = ax;
        for k in (1..60).rev() {
            f = ax + (k as f64 / 2.0) / f;
        }
        1.0 - (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}

/// A binary op with numpy broadcasting. Comparisons give 1.0 or 0.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ^ b` with PyTorch's rules for negative bases
    Pow,
    /// `max(a, b)`; NaN when either is NaN (PyTorch's `maximum`)
    Maximum,
    /// `min(a, b)`; NaN when either is NaN (PyTorch's `minimum`)
    Minimum,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
    /// relu backward: `b <= 0 ? 0 : a` (a = grad, b = input; NaN inputs pass the
    /// gradient, as PyTorch's threshold backward)
    ReluBackward,
    /// sigmoid backward from output: `a * b * (1 - b)` (a = grad, b = output)
    SigmoidBackward,
    /// tanh backward from output: `a * (1 - b^2)` (a = grad, b = output)
    TanhBackward,
}

impl BinaryOp {
    /// Every binary op.
    pub const ALL: [BinaryOp; 16] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::ReluBackward,
        BinaryOp::SigmoidBackward,
        BinaryOp::TanhBackward,
    ];

    /// The op's name, as used in errors.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::ReluBackward => "relu_backward",
            BinaryOp::SigmoidBackward => "sigmoid_backward",
            BinaryOp::TanhBackward => "tanh_backward",
        }
    }

    /// The WGSL expression of the op in `a`, `b`.
    pub fn expr(self) -> &'static str {
        match self {
            BinaryOp::Add => "a + b",
            BinaryOp::Sub => "a - b",
            BinaryOp::Mul => "a * b",
            BinaryOp::Div => "a / b",
            BinaryOp::Pow => "powf(a, b)",
            BinaryOp::Maximum => "max_nan(a, b)",
            BinaryOp::Minimum => "min_nan(a, b)",
            BinaryOp::Eq => "b2f(a == b)",
            // WGSL's `!=` compiles to an ordered compare (false for NaN); PyTorch's is true.
            BinaryOp::Ne => "b2f(!(a == b) || is_nan(a) || is_nan(b))",
            BinaryOp::Lt => "b2f(a < b)",
            BinaryOp::Le => "b2f(a <= b)",
            BinaryOp::Gt => "b2f(a > b)",
            BinaryOp::Ge => "b2f(a >= b)",
            BinaryOp::ReluBackward => "select(a, 0.0, b <= 0.0)",
            BinaryOp::SigmoidBackward => "a * b * (1.0 - b)",
            BinaryOp::TanhBackward => "a * (1.0 - b * b)",
        }
    }

    /// A plain-Rust reference of the op, for tests.
    pub fn reference(self, a: f32, b: f32) -> f32 {
        let f = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Maximum => max_nan(a, b),
            BinaryOp::Minimum => min_nan(a, b),
            BinaryOp::Eq => f(a == b),
            BinaryOp::Ne => f(a != b),
            BinaryOp::Lt => f(a < b),
            BinaryOp::Le => f(a <= b),
            BinaryOp::Gt => f(a > b),
            BinaryOp::Ge => f(a >= b),
            BinaryOp::ReluBackward => {
                if b <= 0.0 {
                    0.0
                } else {
                    a
                }
            }
            BinaryOp::SigmoidBackward => a * b * (1.0 - b),
            BinaryOp::TanhBackward => a * (1.0 - b * b),
        }
    }
}

fn unary_kernel(op: UnaryOp) -> Kernel {
    Kernel::new("elementwise", "unary", 1, 1)
        .with_subst("UNARY_OP", op.expr())
        .with_subst("BINARY_OP", "a")
}

fn binary_kernel(entry: &'static str, op: BinaryOp, reads: u32) -> Kernel {
    Kernel::new("elementwise", entry, reads, 1)
        .with_subst("UNARY_OP", "x")
        .with_subst("BINARY_OP", op.expr())
}

/// The broadcast entry point as a copy of its first operand (`broadcast_to`).
fn copy_bcast_kernel() -> Kernel {
    Kernel::new("elementwise", "binary_bcast", 2, 1)
        .with_subst("UNARY_OP", "x")
        .with_subst("BINARY_OP", "a")
}

fn plain_kernel(entry: &'static str, reads: u32, writes: u32) -> Kernel {
    Kernel::new("elementwise", entry, reads, writes)
        .with_subst("UNARY_OP", "x")
        .with_subst("BINARY_OP", "a")
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    let mut v: Vec<Kernel> = UnaryOp::ALL.iter().map(|&op| unary_kernel(op)).collect();
    for op in BinaryOp::ALL {
        v.push(binary_kernel("binary", op, 2));
        v.push(binary_kernel("binary_bcast", op, 2));
        v.push(binary_kernel("binary_scalar", op, 1));
    }
    v.push(copy_bcast_kernel());
    v.push(plain_kernel("where_select", 3, 1));
    v.push(plain_kernel("fill", 0, 1));
    v
}

fn p1(n: usize, a: f32, b: f32, swap: bool) -> Params {
    Params::new().usize(n).f32(a).f32(b).u32(swap as u32)
}

impl DeviceTensor {
    /// A tensor of `shape` filled with `value`. Returns [`Error::TooLarge`] past the limit.
    pub fn full(device: &Device, shape: &[usize], value: f32) -> Result<DeviceTensor> {
        let out = DeviceTensor::uninit_for("full", device, shape, DType::F32)?;
        let n = out.numel();
        device.dispatch(
            &plain_kernel("fill", 0, 1),
            &[],
            &[&out],
            &p1(n, value, 0.0, false),
            grid_elems(n)?,
        )?;
        Ok(out)
    }

    /// A tensor of zeros.
    pub fn zeros(device: &Device, shape: &[usize]) -> Result<DeviceTensor> {
        Self::full(device, shape, 0.0)
    }

    /// A tensor of ones.
    pub fn ones(device: &Device, shape: &[usize]) -> Result<DeviceTensor> {
        Self::full(device, shape, 1.0)
    }

    /// A zero tensor with this tensor's shape and device.
    pub fn zeros_like(&self) -> Result<DeviceTensor> {
        Self::zeros(self.device(), self.shape())
    }

    /// A one tensor with this tensor's shape and device.
    pub fn ones_like(&self) -> Result<DeviceTensor> {
        Self::ones(self.device(), self.shape())
    }

    /// Applies a unary op with parameters `a`, `b` (ignored by ops that take none).
    /// Returns [`Error::DtypeMismatch`] for `u32` tensors.
    pub fn unary(&self, op: UnaryOp, a: f32, b: f32) -> Result<DeviceTensor> {
        self.expect_dtype("unary", DType::F32)?;
        let out = DeviceTensor::uninit_for("unary", self.device(), self.shape(), DType::F32)?;
        let n = self.numel();
        self.device().dispatch(
            &unary_kernel(op),
            &[self],
            &[&out],
            &p1(n, a, b, false),
            grid_elems(n)?,
        )?;
        Ok(out)
    }

    /// Applies a binary op with numpy broadcasting. Returns [`Error::ShapeMismatch`] when
    /// the shapes do not broadcast and [`Error::DtypeMismatch`] for `u32` operands.
    pub fn binary(&self, op: BinaryOp, rhs: &DeviceTensor) -> Result<DeviceTensor> {
        let name = op.name();
        self.expect_dtype(name, DType::F32)?;
        rhs.expect_dtype(name, DType::F32)?;
        let shape = broadcast_shapes(name, self.shape(), rhs.shape())?;
        let out = DeviceTensor::uninit_for(name, self.device(), &shape, DType::F32)?;
        let n = out.numel();
        if self.shape() == rhs.shape() {
            let k = binary_kernel("binary", op, 2);
            self.device().dispatch(
                &k,
                &[self, rhs],
                &[&out],
                &p1(n, 0.0, 0.0, false),
                grid_elems(n)?,
            )?;
        } else {
            bcast_dispatch(name, &binary_kernel("binary_bcast", op, 2), self, rhs, &out)?;
        }
        Ok(out)
    }

    /// Applies a binary op with a scalar right operand (`x op s`), or left operand when
    /// `scalar_first` (`s op x`). Returns [`Error::DtypeMismatch`] for `u32` tensors.
    pub fn binary_scalar(&self, op: BinaryOp, s: f32, scalar_first: bool) -> Result<DeviceTensor> {
        self.expect_dtype(op.name(), DType::F32)?;
        let out = DeviceTensor::uninit_for(op.name(), self.device(), self.shape(), DType::F32)?;
        let n = self.numel();
        let k = binary_kernel("binary_scalar", op, 1);
        self.device().dispatch(
            &k,
            &[self],
            &[&out],
            &p1(n, s, 0.0, scalar_first),
            grid_elems(n)?,
        )?;
        Ok(out)
    }

    /// This tensor broadcast (copied) to `shape`. Returns [`Error::ShapeMismatch`] when it
    /// does not broadcast to exactly `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<DeviceTensor> {
        let b = broadcast_shapes("broadcast_to", self.shape(), shape)?;
        if b != shape {
            return Err(Error::shapes("broadcast_to", self.shape(), shape));
        }
        if self.shape() == shape {
            return Ok(self.clone());
        }
        self.expect_dtype("broadcast_to", DType::F32)?;
        let out = DeviceTensor::uninit_for("broadcast_to", self.device(), shape, DType::F32)?;
        let k = copy_bcast_kernel();
        bcast_dispatch("broadcast_to", &k, self, self, &out)?;
        Ok(out)
    }

    /// `cond != 0 ? self : other`, elementwise with broadcasting of all three. Returns
    /// [`Error::ShapeMismatch`] when the shapes do not broadcast.
    pub fn where_cond(
        cond: &DeviceTensor,
        a: &DeviceTensor,
        b: &DeviceTensor,
    ) -> Result<DeviceTensor> {
        for t in [cond, a, b] {
            t.expect_dtype("where", DType::F32)?;
        }
        let shape = broadcast_shapes(
            "where",
            &broadcast_shapes("where", cond.shape(), a.shape())?,
            b.shape(),
        )?;
        let (c, a, b) = (
            cond.broadcast_to(&shape)?,
            a.broadcast_to(&shape)?,
            b.broadcast_to(&shape)?,
        );
        let out = DeviceTensor::uninit_for("where", c.device(), &shape, DType::F32)?;
        let n = out.numel();
        let k = plain_kernel("where_select", 3, 1);
        c.device().dispatch(
            &k,
            &[&c, &a, &b],
            &[&out],
            &p1(n, 0.0, 0.0, false),
            grid_elems(n)?,
        )?;
        Ok(out)
    }
}

fn bcast_dispatch(
    op: &'static str,
    k: &Kernel,
    a: &DeviceTensor,
    b: &DeviceTensor,
    out: &DeviceTensor,
) -> Result<()> {
    let shape = out.shape();
    let (sh, st) = coalesce(
        op,
        shape,
        &[
            broadcast_strides(op, a.shape(), shape)?,
            broadcast_strides(op, b.shape(), shape)?,
        ],
    )?;
    if sh.len() > MAX_DIMS {
        return Err(Error::invalid(
            op,
            format!("more than {MAX_DIMS} non-mergeable broadcast dimensions"),
            shape,
        ));
    }
    let n = out.numel();
    let params = Params::new()
        .array(&sh, MAX_DIMS, 1)
        .array(&st[0], MAX_DIMS, 0)
        .array(&st[1], MAX_DIMS, 0)
        .usize(n)
        .usize(sh.len());
    out.device()
        .dispatch(k, &[a, b], &[out], &params, grid_elems(n)?)
}

macro_rules! unary_methods {
    ($($vis:vis fn { $($(#[$m:meta])* $name:ident => $op:ident),* $(,)? })*) => {
        impl DeviceTensor {
            $($($(#[$m])* $vis fn $name(&self) -> Result<DeviceTensor> { self.unary(UnaryOp::$op, 0.0, 0.0) })*)*
        }
    };
}

crate::unary_op_table!(unary_methods, pub);

macro_rules! binary_methods {
    (
        pub fn { $($(#[$m:meta])* $name:ident, $sname:ident => $op:ident),* $(,)? }
        $bvis:vis fn { $($(#[$bm:meta])* $bname:ident => $bop:ident),* $(,)? }
    ) => {
        impl DeviceTensor {
            $(
                $(#[$m])* pub fn $name(&self, rhs: &DeviceTensor) -> Result<DeviceTensor> { self.binary(BinaryOp::$op, rhs) }
                $(#[$m])* #[doc = "Scalar right operand."] pub fn $sname(&self, s: f32) -> Result<DeviceTensor> { self.binary_scalar(BinaryOp::$op, s, false) }
            )*
            $(
                $(#[$bm])* $bvis fn $bname(&self, rhs: &DeviceTensor) -> Result<DeviceTensor> { self.binary(BinaryOp::$bop, rhs) }
            )*
        }
    };
}

crate::binary_op_table!(binary_methods, pub);

impl DeviceTensor {
    /// `s - x`; `Err` for `u32` tensors.
    pub fn rsub_scalar(&self, s: f32) -> Result<DeviceTensor> {
        self.binary_scalar(BinaryOp::Sub, s, true)
    }
    /// `s / x`; `Err` for `u32` tensors.
    pub fn rdiv_scalar(&self, s: f32) -> Result<DeviceTensor> {
        self.binary_scalar(BinaryOp::Div, s, true)
    }
    /// `s ^ x` (PyTorch's `pow(s, x)` with a scalar base); `Err` for `u32` tensors.
    pub fn rpow_scalar(&self, s: f32) -> Result<DeviceTensor> {
        self.binary_scalar(BinaryOp::Pow, s, true)
    }
    /// `x > 0 ? x : slope * x`; `Err` for `u32` tensors.
    pub fn leaky_relu(&self, slope: f32) -> Result<DeviceTensor> {
        self.unary(UnaryOp::LeakyRelu, slope, 0.0)
    }
    /// Leaky relu's derivative: `x > 0 ? 1 : slope`.
    pub fn leaky_relu_grad(&self, slope: f32) -> Result<DeviceTensor> {
        self.unary(UnaryOp::LeakyReluGrad, slope, 0.0)
    }
    /// `x > 0 ? x : alpha (e^x - 1)`; `Err` for `u32` tensors.
    pub fn elu(&self, alpha: f32) -> Result<DeviceTensor> {
        self.unary(UnaryOp::Elu, alpha, 0.0)
    }
    /// ELU's derivative: `x > 0 ? 1 : alpha e^x`.
    pub fn elu_grad(&self, alpha: f32) -> Result<DeviceTensor> {
        self.unary(UnaryOp::EluGrad, alpha, 0.0)
    }
    /// `min(max(x, lo), hi)`, NaN where `x` is NaN; `Err` when `lo > hi` or for `u32`
    /// tensors.
    pub fn clamp(&self, lo: f32, hi: f32) -> Result<DeviceTensor> {
        if lo > hi {
            return Err(Error::invalid(
                "clamp",
                format!("min {lo} > max {hi}"),
                self.shape(),
            ));
        }
        self.unary(UnaryOp::Clamp, lo, hi)
    }
    /// `x^e` (PyTorch's `pow` with a float exponent); `Err` for `u32` tensors.
    pub fn powf(&self, e: f32) -> Result<DeviceTensor> {
        self.unary(UnaryOp::Powf, e, 0.0)
    }
    /// `a * x + b`; `Err` for `u32` tensors.
    pub fn affine(&self, a: f32, b: f32) -> Result<DeviceTensor> {
        self.unary(UnaryOp::Affine, a, b)
    }
}
