//! Index ops and the Embedding layer against `tests/fixtures/index.safetensors`.

use cinder::nn::{Embedding, Module, VarStore};
use cinder::{Result, Tensor};

use crate::harness::{Case, Produced, dev, run_family, unknown};

fn embedding(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let emb = Embedding::new(&vs.root(), case.usize("num")?, case.usize("dim")?)?;
    emb.weight
        .set_data(&case.host("weight")?.to_device(&dev())?)?;
    let out = emb.forward(&case.tensor("ids")?)?;
    out.mul(&case.tensor("cot")?)?.sum_all()?.backward()?;
    let g = emb.weight.grad().ok_or_else(|| unknown(case))?;
    Ok(vec![
        ("expect.out".into(), out),
        ("expect.grad.weight".into(), g),
    ])
}

fn run(case: &Case) -> Result<Produced> {
    if case.op == "Embedding" {
        return embedding(case);
    }
    case.op_outputs(|x| {
        let axis = || Ok::<isize, cinder::Error>(case.i64("axis")? as isize);
        Ok(vec![match case.op.as_str() {
            "gather" => x[0].gather(axis()?, &x[1])?,
            "index_select" => x[0].index_select(axis()?, &x[1])?,
            "scatter_add" => x[0].scatter_add(axis()?, &x[1], &x[2])?,
            "one_hot" => x[0].one_hot(case.usize("classes")?)?,
            _ => return Err(unknown(case)),
        }])
    })
}

#[test]
fn index() {
    run_family("index", run);
}

/// Keeps `Tensor` in use for the runner's closures' types.
#[allow(dead_code)]
fn _types(_: &Tensor) {}
