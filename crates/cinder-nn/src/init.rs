//! Parameter initializers with PyTorch's formulas (`torch.nn.init`), drawn on the GPU from
//! the counter-based generator so that a seed gives the same weights on every adapter.

use cinder_autograd::Tensor;
use cinder_device::shape::checked_product;
use cinder_device::{Device, Error, Result};

/// How a new parameter is filled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Every element equal to the value.
    Constant(f32),
    /// Uniform in `[lo, hi)`.
    Uniform {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// Normal with the given mean and standard deviation (DCGAN uses N(0, 0.02)).
    Normal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// `kaiming_uniform_(a=negative_slope, mode='fan_in', nonlinearity='leaky_relu')`:
    /// bound `gain * sqrt(3 / fan_in)` with `gain = sqrt(2 / (1 + a^2))`. PyTorch's
    /// default for Linear and Conv weights uses `a = sqrt(5)`.
    KaimingUniform {
        /// Negative slope `a` of the leaky relu the gain is computed for.
        negative_slope: f32,
    },
    /// `kaiming_normal_`: std `gain / sqrt(fan_in)`, same gain as [`Init::KaimingUniform`].
    KaimingNormal {
        /// Negative slope `a` of the leaky relu the gain is computed for.
        negative_slope: f32,
    },
    /// `xavier_uniform_`: bound `gain * sqrt(6 / (fan_in + fan_out))`.
    XavierUniform {
        /// Gain.
        gain: f32,
    },
    /// `xavier_normal_`: std `gain * sqrt(2 / (fan_in + fan_out))`.
    XavierNormal {
        /// Gain.
        gain: f32,
    },
}

/// PyTorch's `_calculate_fan_in_and_fan_out`: for `[out, in, k...]` weights,
/// `fan_in = in * prod(k)` and `fan_out = out * prod(k)`; a 1-D tensor has both equal to
/// its length. Returns `Err` for a scalar shape and [`Error::TooLarge`] when a fan
/// overflows.
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    match shape.len() {
        0 => Err(Error::invalid("init", "fan in/out of a scalar", shape)),
        1 => Ok((shape[0], shape[0])),
        _ => {
            let receptive = checked_product("init", shape, &shape[2..])?;
            Ok((
                checked_product("init", shape, &[shape[1], receptive])?,
                checked_product("init", shape, &[shape[0], receptive])?,
            ))
        }
    }
}

impl Init {
    /// A tensor of `shape` filled by this rule from Philox stream `(seed, offset)`. Returns
    /// `Err` for a rule that needs fans on a scalar shape, or invalid bounds.
    pub fn tensor(
        &self,
        device: &Device,
        shape: &[usize],
        seed: u64,
        offset: u64,
    ) -> Result<Tensor> {
        let kaiming_gain = |a: f32| (2.0 / (1.0 + a * a)).sqrt();
        match *self {
            Init::Constant(v) => Tensor::full(device, shape, v),
            Init::Uniform { lo, hi } => Tensor::rand_uniform(device, shape, lo, hi, seed, offset),
            Init::Normal { mean, std } => {
                Tensor::rand_normal(device, shape, mean, std, seed, offset)
            }
            Init::KaimingUniform { negative_slope } => {
                let (fan_in, _) = fans(shape)?;
                let bound = kaiming_gain(negative_slope) * (3.0 / fan_in as f32).sqrt();
                Tensor::rand_uniform(device, shape, -bound, bound, seed, offset)
            }
            Init::KaimingNormal { negative_slope } => {
                let (fan_in, _) = fans(shape)?;
                let std = kaiming_gain(negative_slope) / (fan_in as f32).sqrt();
                Tensor::rand_normal(device, shape, 0.0, std, seed, offset)
            }
            Init::XavierUniform { gain } => {
                let (fi, fo) = fans(shape)?;
                let bound = gain * (6.0 / (fi as f64 + fo as f64)).sqrt() as f32;
                Tensor::rand_uniform(device, shape, -bound, bound, seed, offset)
            }
            Init::XavierNormal { gain } => {
                let (fi, fo) = fans(shape)?;
                let std = gain * (2.0 / (fi as f64 + fo as f64)).sqrt() as f32;
                Tensor::rand_normal(device, shape, 0.0, std, seed, offset)
            }
        }
    }

    /// PyTorch's default weight init for Linear and Conv layers:
    /// `kaiming_uniform_(a=sqrt(5))`, i.e. uniform in `±1/sqrt(fan_in)`.
    pub fn default_weight() -> Init {
        Init::KaimingUniform {
            negative_slope: 5f32.sqrt(),
        }
    }

    /// PyTorch's default bias init for Linear and Conv layers: uniform in
    /// `±1/sqrt(fan_in)` of the layer's weight.
    pub fn default_bias(fan_in: usize) -> Init {
        let b = 1.0 / (fan_in.max(1) as f32).sqrt();
        Init::Uniform { lo: -b, hi: b }
    }
}
