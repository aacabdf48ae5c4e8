//! Trains VGG-11 with batch norm (sized for 32x32) on CIFAR-10 with random crops and flips,
//! with a validation split and early stopping, and reports test accuracy.
//!
//! `cargo run --release --example vgg_cifar -- --data DIR` where DIR holds CIFAR-10's binary
//! files (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`; default
//! `$CINDER_DATA`, then `data/cifar-10-batches-bin`). Writes the same files as
//! `lenet_mnist` under `--out` (default `out/vgg_cifar`); the last stdout line is a JSON
//! object of final metrics.

mod common;

use cinder::data::Transform;
use cinder::models::{VGG11, Vgg};
use cinder::nn::VarStore;
use cinder::prelude::*;
use common::{classify, cli};

fn main() -> anyhow::Result<()> {
    let args: cli::Classifier = cli::parse("vgg_cifar");
    let dev = Device::default()?;
    let data = classify::Data::cifar(&args)?;
    let vs = VarStore::new(&dev, args.common.seed);
    let model = Vgg::new(&vs.root(), VGG11, 3, 10, true, 1)?;
    classify::run(
        "vgg11_bn",
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
