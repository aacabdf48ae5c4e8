//! Helpers shared by the kernel tests: the device, seeded random data, tolerant comparison.
#![allow(dead_code)]

use cinder_device::{Device, DeviceTensor};
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
pub fn uniform(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Uploads `data` with `shape`.
pub fn tensor(data: &[f32], shape: &[usize]) -> DeviceTensor {
    DeviceTensor::from_slice(&dev(), data, shape).expect("upload")
}

/// A random tensor with values in [-1, 1) and its host copy.
pub fn rand_tensor(rng: &mut StdRng, shape: &[usize]) -> (DeviceTensor, Vec<f32>) {
    let n = shape.iter().product();
    let v = uniform(rng, n, -1.0, 1.0);
    (tensor(&v, shape), v)
}

/// Reads an f32 tensor back.
pub fn read(t: &DeviceTensor) -> Vec<f32> {
    t.to_vec::<f32>().expect("readback")
}

/// Reads a u32 tensor back.
pub fn read_u32(t: &DeviceTensor) -> Vec<u32> {
    t.to_vec::<u32>().expect("readback")
}

/// Asserts |got - want| <= atol + rtol * |want| elementwise (NaNs must match NaNs).
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "index {i}: got {g}, want NaN");
            continue;
        }
        if w.is_infinite() {
            assert_eq!(g, w, "index {i}");
            continue;
        }
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "index {i}: got {g}, want {w} (atol {atol}, rtol {rtol})"
        );
    }
}
