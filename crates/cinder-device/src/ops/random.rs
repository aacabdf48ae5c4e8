//! Random tensors from a counter-based generator (Philox4x32-10) on the GPU. Kernels in
//! `shaders/random.wgsl`.
//!
//! Element `e` of a request made with `(seed, offset)` is a function of `(seed, offset + e)`
//! only: drawing 1,000 numbers at once equals drawing 400 and then 600 with the offset
//! advanced by 400, whatever the shapes. Callers that draw repeatedly (dropout, noise)
//! advance `offset` by the number of elements drawn.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_elems};
use crate::tensor::{DType, DeviceTensor};

fn k(entry: &'static str) -> Kernel {
    Kernel::new("random", entry, 0, 1)
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    ["random_bits", "uniform", "normal", "bernoulli"]
        .into_iter()
        .map(k)
        .collect()
}

fn draw(
    op: &'static str,
    entry: &'static str,
    device: &Device,
    shape: &[usize],
    dtype: DType,
    (seed, offset): (u64, u64),
    (a, b): (f32, f32),
) -> Result<DeviceTensor> {
    let out = DeviceTensor::uninit_for(op, device, shape, dtype)?;
    let n = out.numel();
    let p = Params::new()
        .usize(n)
        .u32(seed as u32)
        .u32((seed >> 32) as u32)
        .u32(offset as u32)
        .u32((offset >> 32) as u32)
        .f32(a)
        .f32(b)
        .u32(0);
    device.dispatch(&k(entry), &[], &[&out], &p, grid_elems(n)?)?;
    Ok(out)
}

impl DeviceTensor {
    /// Raw 32-bit Philox outputs (the first word of each element's block), u32.
    pub fn random_bits(
        device: &Device,
        shape: &[usize],
        seed: u64,
        offset: u64,
    ) -> Result<DeviceTensor> {
        draw(
            "random_bits",
            "random_bits",
            device,
            shape,
            DType::U32,
            (seed, offset),
            (0.0, 0.0),
        )
    }

    /// Uniform samples in `[lo, hi)` (24-bit resolution). Returns `Err` when `lo > hi`,
    /// either bound is not finite, or `hi - lo` overflows f32 (as PyTorch's `uniform_`).
    pub fn rand_uniform(
        device: &Device,
        shape: &[usize],
        lo: f32,
        hi: f32,
        seed: u64,
        offset: u64,
    ) -> Result<DeviceTensor> {
        if !lo.is_finite() || !hi.is_finite() || lo > hi || !(hi - lo).is_finite() {
            return Err(Error::invalid(
                "rand_uniform",
                format!("bad range [{lo}, {hi})"),
                shape,
            ));
        }
        draw(
            "rand_uniform",
            "uniform",
            device,
            shape,
            DType::F32,
            (seed, offset),
            (lo, hi),
        )
    }

    /// Normal samples with the given mean and standard deviation (Box-Muller). Returns
    /// `Err` for a negative or non-finite `std`.
    pub fn rand_normal(
        device: &Device,
        shape: &[usize],
        mean: f32,
        std: f32,
        seed: u64,
        offset: u64,
    ) -> Result<DeviceTensor> {
        if !std.is_finite() || !mean.is_finite() || std < 0.0 {
            return Err(Error::invalid(
                "rand_normal",
                format!("bad mean {mean} / std {std}"),
                shape,
            ));
        }
        draw(
            "rand_normal",
            "normal",
            device,
            shape,
            DType::F32,
            (seed, offset),
            (mean, std),
        )
    }

    /// 0/1 samples that are 1 with probability `p`. Returns `Err` when `p` is outside
    /// `[0, 1]`.
    pub fn rand_bernoulli(
        device: &Device,
        shape: &[usize],
        p: f32,
        seed: u64,
        offset: u64,
    ) -> Result<DeviceTensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "rand_bernoulli",
                format!("probability {p} outside [0, 1]"),
                shape,
            ));
        }
        draw(
            "rand_bernoulli",
            "bernoulli",
            device,
            shape,
            DType::F32,
            (seed, offset),
            (p, 0.0),
        )
    }
}
