//! Whole models against `tests/fixtures/models.safetensors`: AlexNet in torchvision's
//! layout (the ImageNet and the 32x32 variant, narrow widths), loading PyTorch's state dict
//! strictly by name, then its output and the gradients of the input and every parameter.

use cinder::Result;
use cinder::models::{AlexNet, AlexNetConfig, AlexNetVariant};
use cinder::nn::{ModuleT, VarStore};

use crate::harness::{Case, Produced, dev, run_family, unknown};

fn alexnet(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let variant = match case.str("variant")? {
        "imagenet" => AlexNetVariant::ImageNet,
        _ => AlexNetVariant::Cifar,
    };
    let cfg = AlexNetConfig {
        variant,
        in_channels: 3,
        classes: case.usize("classes")?,
        hidden: case.usize("hidden")?,
        width_div: case.usize("width_div")?,
        dropout: 0.5,
    };
    let m = AlexNet::new(&vs.pp("m"), &cfg, 0)?;
    case.load_state(&vs)?;
    let x = case.param("x")?;
    // evaluation mode, as the fixture: dropout is off
    let y = m.forward_t(&x, false)?;
    y.mul(&case.tensor("cot")?)?.sum_all()?.backward()?;
    let mut got = vec![
        ("expect.out".to_string(), y),
        ("expect.grad.x".to_string(), x.grad().expect("x's gradient")),
    ];
    got.extend(case.param_grads(&vs, "m."));
    Ok(got)
}

fn run(case: &Case) -> Result<Produced> {
    match case.op.as_str() {
        "AlexNet" => alexnet(case),
        _ => Err(unknown(case)),
    }
}

#[test]
fn models() {
    run_family("models", run);
}
