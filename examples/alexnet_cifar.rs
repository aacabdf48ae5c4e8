//! Trains AlexNet's 32x32 variant (torchvision's names and widths: convolutions of 64, 192,
//! 384, 256 and 256 channels, two hidden layers of 4096 with dropout 0.5) on CIFAR-10 with
//! random crops and flips, with a validation split and early stopping, and reports test
//! accuracy.
//!
//! `cargo run --release --example alexnet_cifar -- --data DIR` where DIR holds CIFAR-10's
//! binary files (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`; default
//! `$CINDER_DATA`, then `data/cifar-10-batches-bin`). Writes the same files as
//! `lenet_mnist` under `--out` (default `out/alexnet_cifar`); the last stdout line is a
//! JSON object of final metrics.

mod common;

use cinder::data::Transform;
use cinder::models::{AlexNet, AlexNetConfig};
use cinder::nn::VarStore;
use cinder::prelude::*;
use common::{classify, cli};

fn main() -> anyhow::Result<()> {
    let args: cli::Classifier = cli::parse("alexnet_cifar");
    let dev = Device::default()?;
    let data = classify::Data::cifar(&args)?;
    let vs = VarStore::new(&dev, args.common.seed);
    let model = AlexNet::new(&vs.root(), &AlexNetConfig::cifar(10), args.common.seed)?;
    classify::run(
        "alexnet_cifar",
        &args,
        &dev,
        &vs,
        &model,
        data,
        vec![
            Transform::RandomCrop { padding: 4 },
            Transform::HorizontalFlip { p: 0.5 },
        ],
    )
}
