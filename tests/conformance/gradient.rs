//! Ops that change only the gradient (`grad_reverse`) against
//! `tests/fixtures/gradient.safetensors`.

use cinder::Result;

use crate::harness::{Case, Produced, run_family, unknown};

fn run(case: &Case) -> Result<Produced> {
    let lambda = case.f32("lambda")?;
    case.op_outputs(|x| {
        Ok(vec![match case.op.as_str() {
            "grad_reverse" => x[0].grad_reverse(lambda)?,
            "grad_reverse_composed" => x[0].mul(&x[1])?.grad_reverse(lambda)?.tanh()?.mul(&x[1])?,
            _ => return Err(unknown(case)),
        }])
    })
}

#[test]
fn gradient() {
    run_family("gradient", run);
}
