//! Kernel benchmarks on the current adapter: matmul (against a CPU sgemm in the same run),
//! LeNet- and VGG-sized conv2d forward and backward, dense against grouped against
//! depthwise 3x3 convolutions of the same channels, softmax, sum and add over 1M elements.
//!
//! `cargo bench --bench kernels`. Each iteration records the op and waits for the device
//! (`sync`), so the figures are GPU time plus one submit, not recording time.

use std::time::Duration;

use cinder_device::ops::conv::Conv2dParams;
use cinder_device::{Device, DeviceTensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

fn filled(d: &Device, shape: &[usize], seed: u64) -> DeviceTensor {
    DeviceTensor::rand_uniform(d, shape, -1.0, 1.0, seed, 0).expect("rand")
}

fn matmul(c: &mut Criterion) {
    let d = dev();
    let mut g = c.benchmark_group("matmul");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for n in [128usize, 256, 512, 1024] {
        g.throughput(Throughput::Elements((2 * n * n * n) as u64)); // FLOPs: read "elem/s" as FLOP/s
        let a = filled(&d, &[n, n], 1);
        let b = filled(&d, &[n, n], 2);
        g.bench_with_input(BenchmarkId::new("gpu", n), &n, |bch, _| {
            bch.iter(|| {
                let c = a.matmul(&b).unwrap();
                d.sync().unwrap();
                c
            })
        });
        let ha = vec![0.5f32; n * n];
        let hb = vec![0.25f32; n * n];
        let mut hc = vec![0f32; n * n];
        g.bench_with_input(BenchmarkId::new("cpu_sgemm", n), &n, |bch, _| {
            bch.iter(|| unsafe {
                matrixmultiply::sgemm(
                    n,
                    n,
                    n,
                    1.0,
                    ha.as_ptr(),
                    n as isize,
                    1,
                    hb.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    hc.as_mut_ptr(),
                    n as isize,
                    1,
                );
            })
        });
    }
    g.finish();
}

fn conv(c: &mut Criterion) {
    let d = dev();
    let mut g = c.benchmark_group("conv2d");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    // (name, input NCHW, weight OCKK, padding)
    let cases: [(&str, [usize; 4], [usize; 4], usize); 6] = [
        (
            "lenet_c1_64x1x28x28_6x5x5_p2",
            [64, 1, 28, 28],
            [6, 1, 5, 5],
            2,
        ),
        (
            "lenet_c2_64x6x14x14_16x5x5",
            [64, 6, 14, 14],
            [16, 6, 5, 5],
            0,
        ),
        (
            "vgg_8x64x32x32_64x3x3_p1",
            [8, 64, 32, 32],
            [64, 64, 3, 3],
            1,
        ),
        (
            "resnet_s1_32x16x32x32_16x3x3_p1",
            [32, 16, 32, 32],
            [16, 16, 3, 3],
            1,
        ),
        (
            "resnet_s2_32x32x16x16_32x3x3_p1",
            [32, 32, 16, 16],
            [32, 32, 3, 3],
            1,
        ),
        (
            "resnet_s3_32x64x8x8_64x3x3_p1",
            [32, 64, 8, 8],
            [64, 64, 3, 3],
            1,
        ),
    ];
    // Forward only: CINDER_CONV=im2col or =implicit forces a path (see ops/conv.rs).
    let forward_only = std::env::var("CINDER_BENCH_FORWARD_ONLY").is_ok();
    for (name, xs, ws, pad) in cases {
        let x = filled(&d, &xs, 3);
        let w = filled(&d, &ws, 4);
        let p = Conv2dParams {
            padding: (pad, pad),
            ..Default::default()
        };
        let y = x.conv2d(&w, None, &p).unwrap();
        let gy = filled(&d, y.shape(), 5);
        let oh = y.shape()[2];
        let ow = y.shape()[3];
        let flops = 2 * xs[0] * ws[0] * ws[1] * ws[2] * ws[3] * oh * ow;
        g.throughput(Throughput::Elements(flops as u64));
        g.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| {
                let y = x.conv2d(&w, None, &p).unwrap();
                d.sync().unwrap();
                y
            })
        });
        if forward_only {
            continue;
        }
        g.throughput(Throughput::Elements(2 * flops as u64));
        g.bench_function(BenchmarkId::new("backward", name), |b| {
            b.iter(|| {
                let gx = DeviceTensor::conv2d_backward_input(&gy, &w, &xs, &p).unwrap();
                let gw = DeviceTensor::conv2d_backward_weight(&gy, &x, &ws, &p).unwrap();
                d.sync().unwrap();
                (gx, gw)
            })
        });
    }
    g.finish();
}

/// A 3x3 convolution over 8 x C x 32 x 32 (padding 1) with C in {32, 64}: dense
/// (groups 1), grouped (8 channels per group: the matmul batched over the groups) and
/// depthwise (groups = C: the grouped direct kernels), forward and backward (input and
/// weight gradients). A depthwise layer replacing a dense one must not be slower.
fn conv_groups(c: &mut Criterion) {
    let d = dev();
    let mut g = c.benchmark_group("conv2d_groups");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for ch in [32usize, 64] {
        let xs = [8, ch, 32, 32];
        let x = filled(&d, &xs, 3);
        for (kind, groups) in [("dense", 1), ("grouped8", ch / 8), ("depthwise", ch)] {
            let ws = [ch, ch / groups, 3, 3];
            let w = filled(&d, &ws, 4);
            let p = Conv2dParams {
                padding: (1, 1),
                groups,
                ..Default::default()
            };
            let y = x.conv2d(&w, None, &p).unwrap();
            let gy = filled(&d, y.shape(), 5);
            let flops = 2 * xs[0] * ws[0] * ws[1] * 9 * 32 * 32;
            let name = format!("{kind}_8x{ch}x32x32_g{groups}");
            g.throughput(Throughput::Elements(flops as u64));
            g.bench_function(BenchmarkId::new("forward", &name), |b| {
                b.iter(|| {
                    let y = x.conv2d(&w, None, &p).unwrap();
                    d.sync().unwrap();
                    y
                })
            });
            g.throughput(Throughput::Elements(2 * flops as u64));
            g.bench_function(BenchmarkId::new("backward", &name), |b| {
                b.iter(|| {
                    let gx = DeviceTensor::conv2d_backward_input(&gy, &w, &xs, &p).unwrap();
                    let gw = DeviceTensor::conv2d_backward_weight(&gy, &x, &ws, &p).unwrap();
                    d.sync().unwrap();
                    (gx, gw)
                })
            });
        }
    }
    g.finish();
}

fn softmax_and_sum(c: &mut Criterion) {
    let d = dev();
    let mut g = c.benchmark_group("reduce");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let n = 1 << 20;
    g.throughput(Throughput::Elements(n as u64));
    let x = filled(&d, &[1024, 1024], 6);
    g.bench_function("softmax_1024x1024_last_axis", |b| {
        b.iter(|| {
            let y = x.softmax(-1).unwrap();
            d.sync().unwrap();
            y
        })
    });
    let flat = x.reshape(&[n]).unwrap();
    g.bench_function("add_1M", |b| {
        b.iter(|| {
            let y = flat.add(&flat).unwrap();
            d.sync().unwrap();
            y
        })
    });
    g.bench_function("sum_all_1M", |b| {
        b.iter(|| {
            let y = flat.sum_all().unwrap();
            d.sync().unwrap();
            y
        })
    });
    g.finish();
}

criterion_group!(benches, matmul, conv, conv_groups, softmax_and_sum);
criterion_main!(benches);
