//! Trains a multilayer perceptron (784-256-128-10, ReLU, dropout 0.2) on Fashion-MNIST (or MNIST with `--data DIR`), with a validation split and
//! early stopping, and reports test accuracy.
//!
//! `scripts/setup.sh && cargo run --release --example mlp_mnist -- --epochs 10`
//! (`--limit 2000 --epochs 1` for a quick run). Writes `out/best.safetensors`,
//! `out/last.safetensors` (for `--resume`), `out/metrics.json` and
//! `out/misclassified.png`; the last stdout line is a JSON object of final metrics.

mod common;

use cinder::data::mnist::{self, FASHION_CLASSES, Split};
use cinder::models::{Activation, Mlp};
use cinder::nn::VarStore;
use cinder::prelude::*;
use clap::Parser;
use common::{Args, classify};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dev = Device::default()?;
    let dir = mnist::data_dir(args.data.as_deref());
    let mut train = mnist::load(&dir, Split::Train)?;
    let mut test = mnist::load(&dir, Split::Test)?;
    if let Some(n) = args.limit {
        train = train.take(n);
    }
    if let Some(n) = args.test_limit {
        test = test.take(n);
    }
    let (train, val) = train.split(args.val_fraction, args.seed)?;
    let vs = VarStore::new(&dev, args.seed);
    let model = Mlp::new(
        &vs.root(),
        &[784, 256, 128, 10],
        Activation::Relu,
        0.2,
        args.seed,
    )?;
    let data = classify::Data {
        train,
        val,
        test,
        classes: FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    classify::run("mlp", &args, &dev, &vs, &model, data, vec![])
}
