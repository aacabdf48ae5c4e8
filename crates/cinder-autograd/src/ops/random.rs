//! Random tensors from the device's counter-based generator (leaves, no grad).

use cinder_device::{Device, DeviceTensor, Result};

use crate::tensor::Tensor;

impl Tensor {
    /// Raw Philox bits, u32. Errors as [`DeviceTensor::random_bits`].
    pub fn random_bits(device: &Device, shape: &[usize], seed: u64, offset: u64) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::random_bits(
            device, shape, seed, offset,
        )?))
    }
    /// Uniform samples in `[lo, hi)`. Errors as [`DeviceTensor::rand_uniform`].
    pub fn rand_uniform(
        device: &Device,
        shape: &[usize],
        lo: f32,
        hi: f32,
        seed: u64,
        offset: u64,
    ) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::rand_uniform(
            device, shape, lo, hi, seed, offset,
        )?))
    }
    /// Normal samples. Errors as [`DeviceTensor::rand_normal`].
    pub fn rand_normal(
        device: &Device,
        shape: &[usize],
        mean: f32,
        std: f32,
        seed: u64,
        offset: u64,
    ) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::rand_normal(
            device, shape, mean, std, seed, offset,
        )?))
    }
    /// 0/1 samples, 1 with probability `p`. Errors as [`DeviceTensor::rand_bernoulli`].
    pub fn rand_bernoulli(
        device: &Device,
        shape: &[usize],
        p: f32,
        seed: u64,
        offset: u64,
    ) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::rand_bernoulli(
            device, shape, p, seed, offset,
        )?))
    }
}
