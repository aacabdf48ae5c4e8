//! Training-step throughput of sequence layers in tokens per second: one LSTM layer (64
//! inputs, 256 units) and one Transformer encoder layer (width 128, 4 heads, feed-forward
//! 512, pre-norm, causal), each over a batch of 32 sequences of 64 steps. A step uploads
//! the batch, runs forward, a mean-squared loss against a fixed target, backward and an Adam
//! step; the device is synchronized once per measured sample.
//!
//! `cargo bench --bench sequence` ("elem/s" reads as tokens/s); it also prints the
//! dispatches one step records. `CINDER_BENCH_MODELS=lstm` or `transformer` picks one.

use std::time::{Duration, Instant};

use cinder::nn::optim::{Adam, AdamConfig, Optimizer};
use cinder::nn::{
    EncoderMasks, Lstm, RnnConfig, TransformerEncoderLayer, TransformerEncoderLayerConfig, VarStore,
};
use cinder::prelude::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const B: usize = 32;
const T: usize = 64;

/// A layer's forward, built in a store.
type Forward = Box<dyn Fn(&Tensor) -> Tensor>;

fn bench_layer(
    c: &mut Criterion,
    name: &str,
    width: usize,
    out_width: usize,
    forward: &dyn Fn(&VarStore) -> Forward,
) {
    let key = name.split('_').next().unwrap_or(name);
    if let Ok(list) = std::env::var("CINDER_BENCH_MODELS")
        && !list.split(',').any(|m| m == key)
    {
        return;
    }
    let dev = Device::default().expect("a wgpu adapter (run scripts/setup.sh)");
    let vs = VarStore::new(&dev, 0);
    let f = forward(&vs);
    let mut opt = Adam::new(vs.parameters(), AdamConfig::default()).unwrap();
    let host: Vec<f32> = (0..B * T * width)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let target = Tensor::zeros(&dev, &[B, T, out_width]).unwrap();
    let step = |opt: &mut Adam| {
        let x = Tensor::from_slice(&dev, &host, &[B, T, width]).unwrap();
        let loss = f(&x)
            .sub(&target)
            .unwrap()
            .square()
            .unwrap()
            .mean_all()
            .unwrap();
        opt.zero_grad();
        loss.backward().unwrap();
        opt.step().unwrap();
    };
    for _ in 0..5 {
        step(&mut opt);
    }
    dev.sync().unwrap();
    let before = dev.dispatch_stats();
    for _ in 0..3 {
        step(&mut opt);
    }
    dev.sync().unwrap();
    let after = dev.dispatch_stats();
    println!(
        "{name}: {} dispatches per step",
        (after.dispatches - before.dispatches) / 3
    );
    let mut g = c.benchmark_group("sequence_train_step");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .warm_up_time(Duration::from_secs(2))
        .throughput(Throughput::Elements((B * T) as u64));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                step(&mut opt);
            }
            dev.sync().unwrap();
            t.elapsed()
        })
    });
    g.finish();
}

fn lstm(c: &mut Criterion) {
    bench_layer(c, "lstm_64_256_b32_t64", 64, 256, &|vs| {
        let cfg = RnnConfig {
            batch_first: true,
            ..Default::default()
        };
        let l = Lstm::new(&vs.root(), 64, 256, cfg).unwrap();
        Box::new(move |x| l.forward(x, None, None, true).unwrap().0)
    });
}

fn transformer(c: &mut Criterion) {
    bench_layer(c, "transformer_128_h4_b32_t64", 128, 128, &|vs| {
        let mut cfg = TransformerEncoderLayerConfig::new(128, 4);
        cfg.dim_feedforward = 512;
        cfg.dropout = 0.0;
        cfg.batch_first = true;
        cfg.norm_first = true;
        let l = TransformerEncoderLayer::new(&vs.root(), cfg).unwrap();
        let masks = EncoderMasks {
            is_causal: true,
            ..Default::default()
        };
        Box::new(move |x| l.forward(x, masks, true).unwrap())
    });
}

criterion_group!(benches, lstm, transformer);
criterion_main!(benches);
