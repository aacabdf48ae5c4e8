//! Autograd overhead on the current adapter.
//!
//! `cargo bench --bench autograd`:
//! - `record/from_op`: CPU cost of recording one node (no kernel: the op's output exists);
//! - `record/add_*`: one tiny `add` through `DeviceTensor` (dispatch recording only) and
//!   through a `Tensor` that requires grad (dispatch plus node), so the difference is what
//!   autograd adds to an op;
//! - `step/spiral_mlp`: forward, backward and a plain SGD update of a 2-64-2 tanh MLP on
//!   200 points, waiting for the device at the end of each step.

use std::time::Duration;

use cinder_autograd::{Tensor, no_grad};
use cinder_device::{Device, DeviceTensor};
use criterion::{Criterion, criterion_group, criterion_main};

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

fn filled(d: &Device, shape: &[usize], seed: u64) -> DeviceTensor {
    DeviceTensor::rand_uniform(d, shape, -1.0, 1.0, seed, 0).expect("rand")
}

fn record(c: &mut Criterion) {
    let d = dev();
    let mut g = c.benchmark_group("record");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let x = Tensor::parameter(filled(&d, &[16], 1)).unwrap();
    let out = filled(&d, &[16], 2);
    g.bench_function("from_op", |b| {
        b.iter(|| {
            Tensor::from_op("noop", out.clone(), &[&x], |c| {
                Ok(vec![Some(c.grad.clone())])
            })
        })
    });
    let (a, bb) = (filled(&d, &[16], 3), filled(&d, &[16], 4));
    g.bench_function("add_device_tensor", |b| b.iter(|| a.add(&bb).unwrap()));
    let y = Tensor::from_raw(bb.clone());
    g.bench_function("add_tensor_requires_grad", |b| {
        b.iter(|| x.add(&y).unwrap())
    });
    d.sync().unwrap();
    g.finish();
}

fn spiral_mlp(c: &mut Criterion) {
    let d = dev();
    let n = 200;
    let x = Tensor::from_raw(filled(&d, &[n, 2], 5));
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 2).collect();
    let onehot = Tensor::from_slice(&d, &labels, &[n])
        .unwrap()
        .one_hot(2)
        .unwrap();
    let p: Vec<Tensor> = [[2usize, 64].as_slice(), &[64], &[64, 2], &[2]]
        .iter()
        .enumerate()
        .map(|(i, s)| Tensor::parameter(filled(&d, s, 10 + i as u64)).unwrap())
        .collect();
    let mut g = c.benchmark_group("step");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("spiral_mlp", |b| {
        b.iter(|| {
            let h = x.matmul(&p[0]).unwrap().add(&p[1]).unwrap().tanh().unwrap();
            let logits = h.matmul(&p[2]).unwrap().add(&p[3]).unwrap();
            let loss = logits
                .log_softmax(1)
                .unwrap()
                .mul(&onehot)
                .unwrap()
                .sum_all()
                .unwrap()
                .mul_scalar(-1.0 / n as f32)
                .unwrap();
            loss.backward().unwrap();
            no_grad(|| {
                for q in &p {
                    let gr = q.grad().unwrap();
                    q.set_data(&q.sub(&gr.mul_scalar(0.1).unwrap()).unwrap())
                        .unwrap();
                    q.zero_grad();
                }
            });
            d.sync().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, record, spiral_mlp);
criterion_main!(benches);
