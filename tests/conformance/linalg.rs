//! The classical pipelines' linear algebra (device ops) against
//! `tests/fixtures/linalg.safetensors`. Eigenvectors and orthonormal columns are unique up to
//! sign: each column is flipped to agree with PyTorch's before the comparison.

use cinder::device::DeviceTensor;
use cinder::{Result, Tensor};

use crate::harness::{Case, Produced, run_family, unknown};

/// `got` `[..., n, m]` with each column's sign set to agree with `want`'s.
fn align_columns(got: &DeviceTensor, want: &[f32]) -> Result<Tensor> {
    let s = got.shape().to_vec();
    let (n, m) = (s[s.len() - 2], s[s.len() - 1]);
    let mut g = got.to_vec::<f32>()?;
    for b in 0..g.len() / (n * m) {
        for j in 0..m {
            let at = |i: usize| b * n * m + i * m + j;
            let dot: f32 = (0..n).map(|i| g[at(i)] * want[at(i)]).sum();
            if dot < 0.0 {
                for i in 0..n {
                    g[at(i)] = -g[at(i)];
                }
            }
        }
    }
    Ok(Tensor::from_raw(DeviceTensor::from_slice(
        got.device(),
        &g,
        &s,
    )?))
}

fn run(case: &Case) -> Result<Produced> {
    match case.op.as_str() {
        "sym_eig" => {
            let (w, v) = case.tensor("a")?.raw().sym_eig()?;
            let v = align_columns(&v, &case.values("expect.v")?)?;
            return Ok(vec![
                ("expect.w".into(), Tensor::from_raw(w)),
                ("expect.v".into(), v),
            ]);
        }
        "orthonormalize" => {
            let q = case.tensor("a")?.raw().orthonormalize()?;
            let q = align_columns(&q, &case.values("expect.q")?)?;
            return Ok(vec![("expect.q".into(), q)]);
        }
        _ => {}
    }
    case.op_outputs(|x| {
        let d = x[0].raw();
        let y = match case.op.as_str() {
            "cholesky" => d.cholesky_checked()?,
            "tri_solve" => d.tri_solve(
                &x[1].raw(),
                case.bool_or("lower", true)?,
                case.bool_or("transpose", false)?,
            )?,
            "tri_inverse" => d.tri_inverse(case.bool_or("lower", true)?)?,
            "cholesky_solve" => d.cholesky_solve(&x[1].raw())?,
            "diagonal" => d.diagonal()?,
            "nonfinite_mask" => d.nonfinite_mask()?,
            _ => return Err(unknown(case)),
        };
        Ok(vec![Tensor::from_raw(y)])
    })
}

#[test]
fn linalg() {
    run_family("linalg", run);
}
