//! Elementwise ops against `tests/fixtures/elementwise.safetensors`.

use cinder::{Result, Tensor};

use crate::harness::{Case, Produced, run_family, unknown};

type Binary = fn(&Tensor, &Tensor) -> Result<Tensor>;
type Scalar = fn(&Tensor, f32) -> Result<Tensor>;

/// The public method PyTorch's `name(a, b)` is.
fn binary(name: &str) -> Option<Binary> {
    Some(match name {
        "add" => Tensor::add,
        "sub" => Tensor::sub,
        "mul" => Tensor::mul,
        "div" => Tensor::div,
        "pow" => Tensor::pow,
        "maximum" => Tensor::maximum,
        "minimum" => Tensor::minimum,
        "eq" => Tensor::eq,
        "ne" => Tensor::ne,
        "lt" => Tensor::lt,
        "le" => Tensor::le,
        "gt" => Tensor::gt,
        "ge" => Tensor::ge,
        _ => return None,
    })
}

/// The public method PyTorch's `name(x, s)` is, or with `first` `name(s, x)`.
fn scalar(name: &str, first: bool) -> Option<Scalar> {
    Some(match (name, first) {
        ("add", _) => Tensor::add_scalar,
        ("sub", false) => Tensor::sub_scalar,
        ("sub", true) => Tensor::rsub_scalar,
        ("mul", _) => Tensor::mul_scalar,
        ("div", false) => Tensor::div_scalar,
        ("div", true) => Tensor::rdiv_scalar,
        ("pow", false) => Tensor::pow_scalar,
        ("pow", true) => Tensor::rpow_scalar,
        ("maximum", _) => Tensor::maximum_scalar,
        ("minimum", _) => Tensor::minimum_scalar,
        ("eq", _) => Tensor::eq_scalar,
        ("ne", _) => Tensor::ne_scalar,
        ("lt", false) | ("gt", true) => Tensor::lt_scalar,
        ("le", false) | ("ge", true) => Tensor::le_scalar,
        ("gt", false) | ("lt", true) => Tensor::gt_scalar,
        ("ge", false) | ("le", true) => Tensor::ge_scalar,
        _ => return None,
    })
}

fn unary(case: &Case, x: &Tensor) -> Result<Tensor> {
    match case.op.as_str() {
        "neg" => x.neg(),
        "abs" => x.abs(),
        "exp" => x.exp(),
        "log" => x.log(),
        "sqrt" => x.sqrt(),
        "rsqrt" => x.rsqrt(),
        "sin" => x.sin(),
        "cos" => x.cos(),
        "relu" => x.relu(),
        "leaky_relu" => x.leaky_relu(case.f32("a")?),
        "elu" => x.elu(case.f32("a")?),
        "sigmoid" => x.sigmoid(),
        "tanh" => x.tanh(),
        "gelu" => x.gelu(),
        "gelu_tanh" => x.gelu_tanh(),
        "silu" => x.silu(),
        "mish" => x.mish(),
        "hardsigmoid" => x.hardsigmoid(),
        "hardswish" => x.hardswish(),
        "hardtanh" => x.hardtanh(case.f32("lo")?, case.f32("hi")?),
        "relu6" => x.hardtanh(0.0, 6.0),
        "softplus" => x.softplus(),
        "square" => x.square(),
        "clamp" => x.clamp(case.f32("lo")?, case.f32("hi")?),
        "clamp_min" => x.clamp_min(case.f32("lo")?),
        "powf" | "powf_int" => x.powf(case.f32("e")?),
        "recip" => x.recip(),
        "sign" => x.sign(),
        "isnan" => x.isnan(),
        "affine" => x.affine(case.f32("a")?, case.f32("b")?),
        "lgamma" => x.lgamma(),
        "digamma" => x.digamma(),
        "broadcast_to" => x.broadcast_to(&case.usizes("shape")?),
        _ => Err(unknown(case)),
    }
}

fn run(case: &Case) -> Result<Produced> {
    case.op_outputs(|x| {
        let op = case.op.as_str();
        let y = if let Some(b) = binary(op) {
            b(&x[0], &x[1])?
        } else if let Some(f) = match op.strip_suffix("_scalar") {
            Some(n) => scalar(n, case.bool_or("first", false)?),
            None => None,
        } {
            f(&x[0], case.f32("s")?)?
        } else if op == "where" {
            Tensor::where_cond(&x[0], &x[1], &x[2])?
        } else if op == "prelu" {
            x[0].prelu(&x[1])?
        } else {
            unary(case, &x[0])?
        };
        Ok(vec![y])
    })
}

#[test]
fn elementwise() {
    run_family("elementwise", run);
}
