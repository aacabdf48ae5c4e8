//! Whole models against `tests/fixtures/models.safetensors`: AlexNet in torchvision's
//! layout (the ImageNet and the 32x32 variant, narrow widths), BEGAN's autoencoder
//! discriminator with its L1 reconstruction loss, and InfoGAN's Q head with its
//! information loss, each loading PyTorch's state dict strictly by name, then its output
//! and the gradients of the input and every parameter.

use cinder::Result;
use cinder::models::{
    AlexNet, AlexNetConfig, AlexNetVariant, BeganDiscriminator, Codes, GanArch, GanConfig,
    InfoGanConfig, QHead,
};
use cinder::nn::{ModuleT, VarStore};
use cinder::prelude::Tensor;

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

fn began(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let image = case.usizes("image")?;
    let arch = match case.str("arch")? {
        "mlp" => GanArch::Mlp {
            hidden: case.usize("hidden")?,
        },
        _ => GanArch::Dcgan {
            width: case.usize("width")?,
        },
    };
    let classes = case.usize("classes")?;
    let cfg = GanConfig {
        arch,
        image: [image[0], image[1], image[2]],
        latent: 1,
        classes: (classes > 0).then_some(classes),
        embed: case.usize("embed")?,
    };
    let d = BeganDiscriminator::new(&vs.pp("m"), cfg, case.usize("code")?)?;
    case.load_state(&vs)?;
    let x = case.param("x")?;
    let labels = if classes > 0 {
        Some(case.tensor("labels")?)
    } else {
        None
    };
    let loss = d.reconstruction_loss(&x, labels.as_ref(), true)?;
    loss.backward()?;
    let mut got = vec![
        ("expect.loss".to_string(), loss),
        ("expect.grad.x".to_string(), x.grad().expect("x's gradient")),
    ];
    got.extend(case.param_grads(&vs, "m."));
    Ok(got)
}

fn q_head(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let cfg = InfoGanConfig {
        noise: 0,
        categories: case.usize("categories")?,
        continuous: case.usize("continuous")?,
        lambda_cat: case.f32("lambda_cat")?,
        lambda_cont: case.f32("lambda_cont")?,
    };
    let q = QHead::new(
        &vs.pp("q"),
        case.usize("features")?,
        case.usize("hidden")?,
        cfg,
    )?;
    case.load_state(&vs)?;
    let f = case.param("features")?;
    let codes = Codes {
        categorical: case.tensor("categorical")?,
        continuous: case.tensor("continuous")?,
        // unused by the loss
        z: Tensor::zeros(&dev(), &[1])?,
    };
    // training mode: batch statistics, as the fixture
    let (loss, ce) = q.info_loss(&f, &codes, true)?;
    loss.backward()?;
    let mut got = vec![
        ("expect.loss".to_string(), loss),
        ("expect.ce".to_string(), ce),
        (
            "expect.grad.features".to_string(),
            f.grad().expect("the features' gradient"),
        ),
    ];
    got.extend(case.param_grads(&vs, "q."));
    Ok(got)
}

fn run(case: &Case) -> Result<Produced> {
    match case.op.as_str() {
        "AlexNet" => alexnet(case),
        "BeganDiscriminator" => began(case),
        "QHead" => q_head(case),
        _ => Err(unknown(case)),
    }
}

#[test]
fn models() {
    run_family("models", run);
}
