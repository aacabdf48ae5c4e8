//! Trains VGG-11 with batch norm (sized for 32x32) on CIFAR-10 with random crops and flips,
//! with a validation split and early stopping, and reports test accuracy.
//!
//! `cargo run --release --example vgg_cifar -- --data DIR` where DIR holds CIFAR-10's binary
//! files (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`; default
//! `$CINDER_DATA`, then `data/cifar-10-batches-bin`). Writes the same outputs as
//! `lenet_mnist`; the last stdout line is a JSON object of final metrics.

mod common;

use cinder::data::Transform;
use cinder::models::{VGG11, Vgg};
use cinder::nn::VarStore;
use cinder::prelude::*;
use clap::Parser;
use common::{Args, classify};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dev = Device::default()?;
    let data = classify::Data::cifar(&args)?;
    let vs = VarStore::new(&dev, args.seed);
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
