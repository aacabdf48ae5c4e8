//! `torch.matmul`, `F.linear` (plain and fused with relu) and the Linear layer against `tests/fixtures/matmul.safetensors`.

use cinder::Result;
use cinder::nn::{Linear, Module, VarStore};

use crate::harness::{Case, Produced, dev, run_family, unknown};

fn linear(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let bias = case.bool_or("bias", true)?;
    let lin = Linear::new(&vs.root(), case.usize("in")?, case.usize("out")?, bias)?;
    lin.weight
        .set_data(&case.host("weight")?.to_device(&dev())?)?;
    if let Some(b) = &lin.bias {
        b.set_data(&case.host("bias")?.to_device(&dev())?)?;
    }
    let x = case.param("x")?;
    let out = lin.forward(&x)?;
    out.mul(&case.tensor("cot")?)?.sum_all()?.backward()?;
    let grad = |t: &cinder::Tensor| t.grad().ok_or_else(|| unknown(case));
    let mut p = vec![
        ("expect.out".to_string(), out.clone()),
        ("expect.grad.x".to_string(), grad(&x)?),
        ("expect.grad.weight".to_string(), grad(&lin.weight)?),
    ];
    if let Some(b) = &lin.bias {
        p.push(("expect.grad.bias".to_string(), grad(b)?));
    }
    Ok(p)
}

fn run(case: &Case) -> Result<Produced> {
    if case.op == "Linear" {
        return linear(case);
    }
    case.op_outputs(|x| {
        Ok(vec![match case.op.as_str() {
            "matmul" => x[0].matmul(&x[1])?,
            "matmul_t" => x[0].matmul_t(
                &x[1],
                case.bool_or("ta", false)?,
                case.bool_or("tb", false)?,
            )?,
            "linear" => x[0].linear(&x[1], x.get(2))?,
            "linear_relu" => x[0].linear_relu(&x[1], x.get(2))?,
            _ => return Err(unknown(case)),
        }])
    })
}

#[test]
fn matmul() {
    run_family("matmul", run);
}
