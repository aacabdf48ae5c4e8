//! Trains the CIFAR ResNet-20 (basic blocks, 16/32/64 channels) on CIFAR-10 with random crops and flips,
//! with a validation split and early stopping, and reports test accuracy.
//!
//! `cargo run --release --example resnet_cifar -- --data DIR` where DIR holds CIFAR-10's binary
//! files (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`; default
//! `$CINDER_DATA`, then `data/cifar-10-batches-bin`). Writes the same outputs as
//! `lenet_mnist`; the last stdout line is a JSON object of final metrics.

mod common;

use std::path::PathBuf;

use cinder::data::Transform;
use cinder::data::cifar::{self, CLASSES};
use cinder::data::mnist::Split;
use cinder::models::ResNet;
use cinder::nn::VarStore;
use cinder::prelude::*;
use clap::Parser;
use common::{Args, classify};

/// The CIFAR-10 directory: `--data`, then `$CINDER_DATA`, then `data/cifar-10-batches-bin`.
pub fn cifar_dir(args: &Args) -> PathBuf {
    args.data
        .clone()
        .or_else(|| std::env::var_os("CINDER_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data/cifar-10-batches-bin"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dev = Device::default()?;
    let dir = cifar_dir(&args);
    let mut train = cifar::load(&dir, Split::Train)?;
    let mut test = cifar::load(&dir, Split::Test)?;
    if let Some(n) = args.limit {
        train = train.take(n);
    }
    if let Some(n) = args.test_limit {
        test = test.take(n);
    }
    let (train, val) = train.split(args.val_fraction, args.seed)?;
    let vs = VarStore::new(&dev, args.seed);
    let model = ResNet::resnet20(&vs.root(), 3, 10)?;
    let data = classify::Data {
        train,
        val,
        test,
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    let augment = vec![
        Transform::RandomCrop { padding: 4 },
        Transform::HorizontalFlip { p: 0.5 },
    ];
    classify::run("resnet20", &args, &dev, &vs, &model, data, augment)
}
