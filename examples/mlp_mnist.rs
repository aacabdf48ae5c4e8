//! Trains a multilayer perceptron (784-256-128-10, ReLU, dropout 0.2) on Fashion-MNIST (or MNIST with `--data DIR`), with a validation split and
//! early stopping, and reports test accuracy.
//!
//! `scripts/setup.sh && cargo run --release --example mlp_mnist -- --epochs 10`
//! (`--limit 2000 --epochs 1` for a quick run). Writes under `--out` (default
//! `out/mlp_mnist`): `best.safetensors`, `last.safetensors` (for `--resume`), `metrics.json`,
//! `curves.png` (loss and accuracy per epoch, training and validation) and
//! `misclassified.png` (test images with their true and predicted class names); the last
//! stdout line is a JSON object of final metrics.

mod common;

use cinder::models::{Activation, Mlp};
use cinder::nn::VarStore;
use cinder::prelude::*;
use common::{classify, cli};

fn main() -> anyhow::Result<()> {
    let args: cli::Classifier = cli::parse("mlp_mnist");
    let dev = Device::default()?;
    let data = classify::Data::mnist(&args)?;
    let vs = VarStore::new(&dev, args.common.seed);
    let model = Mlp::new(
        &vs.root(),
        &[784, 256, 128, 10],
        Activation::Relu,
        0.2,
        args.common.seed,
    )?;
    classify::run("mlp", &args, &dev, &vs, &model, data, vec![])
}
