//! Helpers shared by the nn tests.
#![allow(dead_code)]

use cinder_autograd::Tensor;
use cinder_device::Device;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The shared device.
pub fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

/// `n` uniform values in [lo, hi).
pub fn uniform(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// A constant tensor.
pub fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&dev(), data, shape).unwrap()
}

/// A u32 tensor.
pub fn tu(data: &[u32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&dev(), data, shape).unwrap()
}

/// Reads back.
pub fn read(x: &Tensor) -> Vec<f32> {
    x.to_vec::<f32>().unwrap()
}

/// Mean and standard deviation (population).
pub fn stats(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// Asserts |got - want| <= atol + rtol * |want| elementwise.
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "index {i}: got {g}, want {w}"
        );
    }
}
