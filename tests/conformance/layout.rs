//! Layout ops and constructors against `tests/fixtures/layout.safetensors`.

use cinder::{Result, Tensor};

use crate::harness::{Case, Produced, dev, run_family, unknown};

fn constructor(case: &Case) -> Result<Produced> {
    let t = match case.op.as_str() {
        "arange" => Tensor::arange(
            &dev(),
            case.f32("start")?,
            case.f32("end")?,
            case.f32("step")?,
        )?,
        "eye" => Tensor::eye(&dev(), case.usize("n")?, case.usize("m")?)?,
        _ => return Err(unknown(case)),
    };
    Ok(vec![("expect.out".into(), t)])
}

fn run(case: &Case) -> Result<Produced> {
    if matches!(case.op.as_str(), "arange" | "eye") {
        return constructor(case);
    }
    case.op_outputs(|x| {
        Ok(vec![match case.op.as_str() {
            "reshape" => x[0].reshape(&case.usizes("shape")?)?,
            "flatten_from" => x[0].flatten_from(case.usize("axis")?)?,
            "permute" => x[0].permute(&case.usizes("dims")?)?,
            "transpose" => x[0].transpose(case.i64("d0")? as isize, case.i64("d1")? as isize)?,
            "t" => x[0].t()?,
            "narrow" => x[0].narrow(
                case.i64("axis")? as isize,
                case.usize("start")?,
                case.usize("len")?,
            )?,
            "slice" => x[0].slice(
                case.i64("axis")? as isize,
                case.usize("start")?,
                case.usize("end")?,
            )?,
            "concat" => Tensor::concat(&[&x[0], &x[1], &x[2]], case.i64("axis")? as isize)?,
            "pad" => {
                let pads = case.arg("pads")?.as_array().cloned().unwrap_or_default();
                let pads: Vec<(usize, usize)> = pads
                    .iter()
                    .map(|p| {
                        (
                            p[0].as_u64().unwrap_or(0) as usize,
                            p[1].as_u64().unwrap_or(0) as usize,
                        )
                    })
                    .collect();
                x[0].pad(&pads, case.f32("value")?)?
            }
            _ => return Err(unknown(case)),
        }])
    })
}

#[test]
fn layout() {
    run_family("layout", run);
}
