//! Trains an LSTM that reads each Fashion-MNIST image row by row (28 steps of 28 pixels;
//! one layer of 128 units, its last hidden state into a linear head), with a validation
//! split and early stopping, and reports test accuracy.
//!
//! `scripts/setup.sh && cargo run --release --example lstm_mnist -- --epochs 8`
//! (`--limit 2000 --epochs 1` for a quick run). Writes under `--out` (default
//! `out/lstm_mnist`) what the other classifier examples write: `best.safetensors`,
//! `last.safetensors` (for `--resume`), `metrics.json`, `curves.png` and `misclassified.png`;
//! the last stdout line is a JSON object of final metrics.

mod common;

use cinder::models::RowLstm;
use cinder::nn::VarStore;
use cinder::prelude::*;
use common::{classify, cli};

fn main() -> anyhow::Result<()> {
    let args: cli::Classifier = cli::parse("lstm_mnist");
    let dev = Device::default()?;
    let data = classify::Data::mnist(&args)?;
    let vs = VarStore::new(&dev, args.common.seed);
    let model = RowLstm::new(&vs.root(), 28, 128, 1, 0.0, 10, args.common.seed)?;
    classify::run("lstm", &args, &dev, &vs, &model, data, vec![])
}
