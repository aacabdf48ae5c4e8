//! Trains LeNet-5 on Fashion-MNIST (or MNIST with `--data DIR`), with a validation split and
//! early stopping, and reports test accuracy.
//!
//! `scripts/setup.sh && cargo run --release --example lenet_mnist -- --epochs 10`
//! (`--limit 2000 --epochs 1` for a quick run). Writes under `--out` (default
//! `out/lenet_mnist`): `best.safetensors`, `last.safetensors` (for `--resume`), `metrics.json`,
//! `curves.png` (loss and accuracy per epoch, training and validation) and
//! `misclassified.png` (test images with their true and predicted class names); the last
//! stdout line is a JSON object of final metrics.

mod common;

use cinder::models::LeNet5;
use cinder::nn::VarStore;
use cinder::prelude::*;
use common::{classify, cli};

fn main() -> anyhow::Result<()> {
    let args: cli::Classifier = cli::parse("lenet_mnist");
    let dev = Device::default()?;
    let data = classify::Data::mnist(&args)?;
    let vs = VarStore::new(&dev, args.common.seed);
    let model = LeNet5::new(&vs.root(), 1, 10)?;
    classify::run("lenet5", &args, &dev, &vs, &model, data, vec![])
}
