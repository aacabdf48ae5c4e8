//! Elementwise ops against `tests/fixtures/elementwise.safetensors`.

use cinder::device::BinaryOp;
use cinder::{Result, Tensor};

use crate::harness::{Case, Produced, run_family, unknown};

fn binary(name: &str) -> Option<BinaryOp> {
    Some(match name {
        "add" => BinaryOp::Add,
        "sub" => BinaryOp::Sub,
        "mul" => BinaryOp::Mul,
        "div" => BinaryOp::Div,
        "pow" => BinaryOp::Pow,
        "maximum" => BinaryOp::Maximum,
        "minimum" => BinaryOp::Minimum,
        "eq" => BinaryOp::Eq,
        "ne" => BinaryOp::Ne,
        "lt" => BinaryOp::Lt,
        "le" => BinaryOp::Le,
        "gt" => BinaryOp::Gt,
        "ge" => BinaryOp::Ge,
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
        "broadcast_to" => x.broadcast_to(&case.usizes("shape")?),
        _ => Err(unknown(case)),
    }
}

fn run(case: &Case) -> Result<Produced> {
    case.op_outputs(|x| {
        let op = case.op.as_str();
        let y = if let Some(b) = binary(op) {
            x[0].binary(b, &x[1])?
        } else if let Some(b) = op.strip_suffix("_scalar").and_then(binary) {
            x[0].binary_scalar(b, case.f32("s")?, case.bool_or("first", false)?)?
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
