//! Training-step throughput, measured the way `../shared/peers/burn-bench` measures Burn:
//! every step uploads a host batch (f32 images, u32 labels), runs forward, cross-entropy,
//! backward and an Adam step (lr 1e-3); the device is synchronized once per measured
//! sample, not per step, so steps pipeline as they do in training.
//!
//! `cargo bench --bench train_step`: images/s ("elem/s") for the MLP 784-256-10 (ReLU,
//! batch 128), LeNet-5 (batch 64) and ResNet-20 (CIFAR shape, batch 32), and the number of
//! dispatches one step records. With `CINDER_PROFILE=1` each model instead runs 5 profiled
//! steps after its warm-up and prints the per-kernel table for one step (no timing: profiling
//! serializes the dispatches). `CINDER_BENCH_MODELS=mlp,lenet` picks models.

use std::time::{Duration, Instant};

use cinder::device::profile;
use cinder::models::{Activation, LeNet5, Mlp, ResNet};
use cinder::nn::loss::{CrossEntropy, cross_entropy};
use cinder::nn::optim::{Adam, AdamConfig, Optimizer};
use cinder::nn::{ModuleT, VarStore};
use cinder::prelude::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A few host batches to cycle through (pixels in [0, 1], labels 0-9).
fn host_batches(bs: usize, pixels: usize, n: usize) -> Vec<(Vec<f32>, Vec<u32>)> {
    let mut r = StdRng::seed_from_u64(1);
    (0..n)
        .map(|_| {
            let x = (0..bs * pixels).map(|_| r.random_range(0.0..1.0)).collect();
            let y = (0..bs).map(|_| r.random_range(0..10u32)).collect();
            (x, y)
        })
        .collect()
}

fn bench_model(
    c: &mut Criterion,
    name: &str,
    bs: usize,
    shape: &[usize],
    build: impl Fn(&VarStore) -> Box<dyn ModuleT>,
) {
    let key = name.split('_').next().unwrap_or(name);
    if let Ok(list) = std::env::var("CINDER_BENCH_MODELS")
        && !list.split(',').any(|m| m == key)
    {
        return;
    }
    let dev = Device::default().expect("a wgpu adapter (run scripts/setup.sh)");
    let vs = VarStore::new(&dev, 0);
    let model = build(&vs);
    let mut opt = Adam::new(vs.parameters(), AdamConfig::default()).unwrap();
    let ce = CrossEntropy::default();
    let batches = host_batches(bs, shape[1..].iter().product(), 4);
    let mut k = 0usize;
    let mut step = |opt: &mut Adam| {
        let (hx, hy) = &batches[k % batches.len()];
        k += 1;
        let x = Tensor::from_slice(&dev, hx, shape).unwrap();
        let y = Tensor::from_slice(&dev, hy, &[bs]).unwrap();
        let loss = cross_entropy(&model.forward_t(&x, true).unwrap(), &y, &ce).unwrap();
        opt.zero_grad();
        loss.backward().unwrap();
        opt.step().unwrap();
    };
    // warm-up: pipelines compiled, pool filled
    for _ in 0..10 {
        step(&mut opt);
    }
    dev.sync().unwrap();
    let before = dev.dispatch_stats();
    for _ in 0..5 {
        step(&mut opt);
    }
    dev.sync().unwrap();
    let after = dev.dispatch_stats();
    println!(
        "{name}: {} dispatches and {:.1} submits per step",
        (after.dispatches - before.dispatches) / 5,
        (after.submits - before.submits) as f64 / 5.0
    );
    if profile::enabled() {
        profile::reset();
        for _ in 0..5 {
            step(&mut opt);
        }
        dev.sync().unwrap();
        println!("{name}, one step (mean of 5):");
        let (rows, _) = profile::report();
        let total: f64 = rows.iter().map(|r| r.seconds).sum::<f64>() / 5.0;
        println!("| kernel | calls | ms | share |\n|---|---|---|---|");
        for r in rows {
            println!(
                "| `{}` | {} | {:.3} | {:.1}% |",
                r.label,
                r.calls / 5,
                r.seconds * 1e3 / 5.0,
                100.0 * r.seconds / 5.0 / total
            );
        }
        println!("| total | | {:.3} | |", total * 1e3);
        profile::reset();
        return;
    }
    let mut g = c.benchmark_group("train_step");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(bs as u64));
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

fn mlp(c: &mut Criterion) {
    bench_model(c, "mlp_784_256_10_b128", 128, &[128, 784], |vs| {
        Box::new(Mlp::new(&vs.root(), &[784, 256, 10], Activation::Relu, 0.0, 0).unwrap())
    });
}

fn lenet(c: &mut Criterion) {
    bench_model(c, "lenet5_b64", 64, &[64, 1, 28, 28], |vs| {
        Box::new(LeNet5::new(&vs.root(), 1, 10).unwrap())
    });
}

fn resnet20(c: &mut Criterion) {
    bench_model(c, "resnet20_b32", 32, &[32, 3, 32, 32], |vs| {
        Box::new(ResNet::resnet20(&vs.root(), 3, 10).unwrap())
    });
}

criterion_group!(benches, mlp, lenet, resnet20);
criterion_main!(benches);
