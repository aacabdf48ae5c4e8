//! Elementwise ops against `tests/fixtures/elementwise.safetensors`.

use cinder::Result;

use crate::harness::{Case, Produced, run_family, unknown};

fn run(case: &Case) -> Result<Produced> {
    case.op_outputs(|x| {
        Ok(vec![match case.op.as_str() {
            "relu" => x[0].relu()?,
            _ => return Err(unknown(case)),
        }])
    })
}

#[test]
fn elementwise() {
    run_family("elementwise", run);
}
