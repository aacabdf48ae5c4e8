//! Helpers shared by the autograd tests.
#![allow(dead_code)]

use cinder_autograd::{GradcheckOptions, Tensor, gradcheck};
use cinder_device::{Device, DeviceTensor, Result};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The shared device (lavapipe in CI).
pub fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

/// A seeded generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` uniform values in [lo, hi).
pub fn uniform(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// `n` values with |v| in [0.2, 1): away from the kinks of relu, abs and friends.
pub fn away_from_zero(seed: u64, n: usize) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let m = r.random_range(0.2f32..1.0);
            if r.random_bool(0.5) { m } else { -m }
        })
        .collect()
}

/// A leaf that does not require grad.
pub fn constant(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&dev(), data, shape).expect("upload")
}

/// A leaf parameter (requires grad).
pub fn param(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::parameter(DeviceTensor::from_slice(&dev(), data, shape).expect("upload")).unwrap()
}

/// A random parameter with values in [-1, 1).
pub fn rand_param(seed: u64, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    param(&uniform(seed, n, -1.0, 1.0), shape)
}

/// A u32 index tensor.
pub fn index(data: &[u32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&dev(), data, shape).expect("upload")
}

/// Reads an f32 tensor back.
pub fn read(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().expect("readback")
}

/// Gradcheck with the default options; panics with the report on failure.
#[track_caller]
pub fn check(inputs: &[&Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    check_with(inputs, f, &GradcheckOptions::default());
}

/// Gradcheck with explicit options; panics with the report on failure.
#[track_caller]
pub fn check_with(
    inputs: &[&Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    opts: &GradcheckOptions,
) {
    let owned: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    if let Err(e) = gradcheck(&owned, f, opts) {
        panic!("{e}");
    }
}

/// Asserts |got - want| <= atol + rtol * |want| elementwise.
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "index {i}: got {g}, want {w} (atol {atol}, rtol {rtol})"
        );
    }
}
