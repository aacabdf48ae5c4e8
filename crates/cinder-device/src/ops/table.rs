//! The one table of named elementwise ops. [`crate::DeviceTensor`] and the autograd crate's
//! `Tensor` both generate their methods from it, so a name, its [`crate::UnaryOp`] or
//! [`crate::BinaryOp`] and its documentation are written once.
//!
//! Each table macro takes the name of a callback macro and the visibility to give the
//! backward-only ops (the derivatives that backward rules use; the device crate exposes
//! them to kernel authors, the autograd crate keeps them to itself). The callback receives
//! groups `VIS fn { /// docs  name => Op, ... }`, followed by any tokens given after the
//! visibility (`unary_op_table!(cb, pub(crate), more tokens)`), so one callback can collect
//! both tables.

/// Expands `$cb!` with every named unary op: `pub fn { ... }` for the public ones and
/// `$backward fn { ... }` for the derivatives backward rules use. Every method takes no
/// argument besides `self` and calls `unary(UnaryOp::Op, 0.0, 0.0)`.
#[macro_export]
macro_rules! unary_op_table {
    ($cb:ident, $backward:vis $(, $($extra:tt)*)?) => {
        $cb! {
            pub fn {
                /// `-x`; `Err` for `u32` tensors.
                neg => Neg,
                /// `|x|` (gradient `sign(x)`); `Err` for `u32` tensors.
                abs => Abs,
                /// `e^x`; `Err` for `u32` tensors.
                exp => Exp,
                /// Natural log (`-inf` at 0, NaN below); `Err` for `u32` tensors.
                log => Log,
                /// Square root; `Err` for `u32` tensors.
                sqrt => Sqrt,
                /// `1/sqrt(x)`; `Err` for `u32` tensors.
                rsqrt => Rsqrt,
                /// Sine; `Err` for `u32` tensors.
                sin => Sin,
                /// Cosine; `Err` for `u32` tensors.
                cos => Cos,
                /// `max(x, 0)`, NaN stays NaN (gradient 0 at 0 and 1 at NaN, as PyTorch);
                /// `Err` for `u32` tensors.
                relu => Relu,
                /// Logistic sigmoid; `Err` for `u32` tensors.
                sigmoid => Sigmoid,
                /// Hyperbolic tangent; `Err` for `u32` tensors.
                tanh => Tanh,
                /// GELU (exact, erf form); `Err` for `u32` tensors.
                gelu => Gelu,
                /// GELU with the tanh approximation (PyTorch's `gelu(x, approximate="tanh")`);
                /// `Err` for `u32` tensors.
                gelu_tanh => GeluTanh,
                /// SiLU `x sigmoid(x)` (PyTorch's `silu`); `Err` for `u32` tensors.
                silu => Silu,
                /// Mish `x tanh(softplus(x))`; `Err` for `u32` tensors.
                mish => Mish,
                /// Hardsigmoid `clamp(x/6 + 1/2, 0, 1)` (gradient 1/6 strictly inside
                /// (-3, 3)); `Err` for `u32` tensors.
                hardsigmoid => Hardsigmoid,
                /// Hardswish `x hardsigmoid(x)`; `Err` for `u32` tensors.
                hardswish => Hardswish,
                /// 1 where NaN, else 0 (no grad); `Err` for `u32` tensors.
                isnan => IsNan,
                /// `log(1 + e^x)`; `Err` for `u32` tensors.
                softplus => Softplus,
                /// `x^2`; `Err` for `u32` tensors.
                square => Square,
                /// `1/x`; `Err` for `u32` tensors.
                recip => Recip,
                /// Sign (-1, 0, 1; 0 at NaN), no grad; `Err` for `u32` tensors.
                sign => Sign,
                /// `log |Gamma(x)|` as `torch.lgamma` (`+inf` at 0, the negative integers and
                /// `+-inf`; gradient `digamma(x)`); `Err` for `u32` tensors.
                lgamma => Lgamma,
                /// Digamma `psi(x)` as `torch.digamma` (`-inf` at +0, NaN at the negative
                /// integers; gradient `trigamma(x)`, which has no gradient itself); `Err` for
                /// `u32` tensors.
                digamma => Digamma,
            }
            $backward fn {
                /// `x <= 0 ? 0 : 1`, relu's derivative (1 at NaN), no grad; `Err` for `u32`
                /// tensors.
                relu_mask => ReluMask,
                /// GELU's derivative (differentiable); `Err` for `u32` tensors.
                gelu_grad => GeluGrad,
                /// `y (1 - y)` from a sigmoid output y (differentiable); `Err` for `u32`
                /// tensors.
                sigmoid_grad_from_output => SigmoidGradFromOutput,
                /// `1 - y^2` from a tanh output y (differentiable); `Err` for `u32` tensors.
                tanh_grad_from_output => TanhGradFromOutput,
                /// Trigamma `psi'(x)`, digamma's derivative (its own backward returns `Err`:
                /// no third derivative of `log Gamma`); `Err` for `u32` tensors.
                trigamma => Trigamma,
            }
            $($($extra)*)?
        }
    };
}

/// Expands `$cb!` with every named binary op, as `name, name_scalar => Op`: the tensor
/// form calls `binary(BinaryOp::Op, rhs)` and the scalar form
/// `binary_scalar(BinaryOp::Op, s, false)`. The backward-only ops (`grad op input`) come
/// in a `$backward fn { name => Op }` group with a tensor form only.
#[macro_export]
macro_rules! binary_op_table {
    ($cb:ident, $backward:vis $(, $($extra:tt)*)?) => {
        $cb! {
            pub fn {
                /// `a + b` with broadcasting; `Err` when shapes do not broadcast.
                add, add_scalar => Add,
                /// `a - b` with broadcasting; `Err` when shapes do not broadcast.
                sub, sub_scalar => Sub,
                /// `a * b` with broadcasting; `Err` when shapes do not broadcast.
                mul, mul_scalar => Mul,
                /// `a / b` with broadcasting; `Err` when shapes do not broadcast.
                div, div_scalar => Div,
                /// `a ^ b` with broadcasting (gradient in `b` needs `a > 0`); `Err` when
                /// shapes do not broadcast.
                pow, pow_scalar => Pow,
                /// `max(a, b)` with broadcasting, NaN when either is NaN (PyTorch's
                /// `maximum`: ties split the gradient, NaN passes it to both sides); `Err`
                /// when shapes do not broadcast.
                maximum, maximum_scalar => Maximum,
                /// `min(a, b)` with broadcasting, NaN when either is NaN (PyTorch's
                /// `minimum`); `Err` when shapes do not broadcast.
                minimum, minimum_scalar => Minimum,
                /// `a == b` as 1/0 (no grad); `Err` when shapes do not broadcast.
                eq, eq_scalar => Eq,
                /// `a != b` as 1/0 (no grad); `Err` when shapes do not broadcast.
                ne, ne_scalar => Ne,
                /// `a < b` as 1/0 (no grad); `Err` when shapes do not broadcast.
                lt, lt_scalar => Lt,
                /// `a <= b` as 1/0 (no grad); `Err` when shapes do not broadcast.
                le, le_scalar => Le,
                /// `a > b` as 1/0 (no grad); `Err` when shapes do not broadcast.
                gt, gt_scalar => Gt,
                /// `a >= b` as 1/0 (no grad); `Err` when shapes do not broadcast.
                ge, ge_scalar => Ge,
            }
            $backward fn {
                /// relu backward: `input > 0 ? grad : 0`, with `self` the incoming gradient;
                /// `Err` when shapes do not broadcast.
                relu_backward => ReluBackward,
                /// sigmoid backward from its output: `grad * y * (1 - y)`, with `self` the
                /// gradient; `Err` when shapes do not broadcast.
                sigmoid_backward => SigmoidBackward,
                /// tanh backward from its output: `grad * (1 - y^2)`, with `self` the
                /// gradient; `Err` when shapes do not broadcast.
                tanh_backward => TanhBackward,
            }
            $($($extra)*)?
        }
    };
}
