//! Trains a multilayer perceptron (784-256-128-10, ReLU, dropout 0.2) on Fashion-MNIST (or MNIST with `--data DIR`), with a validation split and
//! early stopping, and reports test accuracy.
//!
//! `scripts/setup.sh && cargo run --release --example mlp_mnist -- --epochs 10`
//! (`--limit 2000 --epochs 1` for a quick run). Writes `out/best.safetensors`,
//! `out/last.safetensors` (for `--resume`), `out/metrics.json` and
//! `out/misclassified.png`; the last stdout line is a JSON object of final metrics.

mod common;

use cinder::models::{Activation, Mlp};
use cinder::nn::VarStore;
use cinder::prelude::*;
use clap::Parser;
use common::{Args, classify};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dev = Device::default()?;
    let data = classify::Data::mnist(&args)?;
    let vs = VarStore::new(&dev, args.seed);
    let model = Mlp::new(
        &vs.root(),
        &[784, 256, 128, 10],
        Activation::Relu,
        0.2,
        args.seed,
    )?;
    classify::run("mlp", &args, &dev, &vs, &model, data, vec![])
}
