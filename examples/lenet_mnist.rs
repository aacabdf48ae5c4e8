//! Trains LeNet-5 on Fashion-MNIST (or MNIST with `--data DIR`), with a validation split and
//! early stopping, and reports test accuracy.
//!
//! `scripts/setup.sh && cargo run --release --example lenet_mnist -- --epochs 10`
//! (`--limit 2000 --epochs 1` for a quick run). Writes `out/best.safetensors`,
//! `out/last.safetensors` (for `--resume`), `out/metrics.json` and
//! `out/misclassified.png`; the last stdout line is a JSON object of final metrics.

mod common;

use cinder::models::LeNet5;
use cinder::nn::VarStore;
use cinder::prelude::*;
use clap::Parser;
use common::{Args, classify};

fn main() -> anyhow::Result<()> {
    let args = Args::parse().default_lr(2e-3);
    let dev = Device::default()?;
    let data = classify::Data::mnist(&args)?;
    let vs = VarStore::new(&dev, args.seed);
    let model = LeNet5::new(&vs.root(), 1, 10)?;
    classify::run("lenet5", &args, &dev, &vs, &model, data, vec![])
}
