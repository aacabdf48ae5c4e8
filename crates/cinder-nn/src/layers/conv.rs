//! `Conv2d` and `ConvTranspose2d`, PyTorch's layers (groups = 1).

use cinder_autograd::Tensor;
use cinder_device::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use cinder_device::{Error, Result};

use crate::init::{Init, fans};
use crate::module::Module;
use crate::var_store::Path;

/// Options of [`Conv2d`] (PyTorch's defaults: stride 1, padding 0, dilation 1, bias).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Stride (square).
    pub stride: usize,
    /// Zero padding on each side (square).
    pub padding: usize,
    /// Dilation (square).
    pub dilation: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: 1,
            padding: 0,
            dilation: 1,
            bias: true,
        }
    }
}

/// A 2-D convolution: `weight [out, in, k, k]`, optional `bias [out]`, initialized as
/// PyTorch does (uniform in `±1/sqrt(in * k * k)`).
pub struct Conv2d {
    /// `[out_channels, in_channels, k, k]`.
    pub weight: Tensor,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Tensor>,
    /// Stride, padding and dilation.
    pub params: Conv2dParams,
}

fn check_sizes(op: &'static str, sizes: &[usize]) -> Result<()> {
    if sizes.contains(&0) {
        return Err(Error::invalid(
            op,
            "channels, kernel and stride must be positive",
            sizes,
        ));
    }
    Ok(())
}

impl Conv2d {
    /// Creates the layer under `path`. Returns `Err` for zero sizes or a taken name.
    pub fn new(
        path: &Path,
        in_ch: usize,
        out_ch: usize,
        k: usize,
        cfg: Conv2dConfig,
    ) -> Result<Conv2d> {
        check_sizes("Conv2d", &[in_ch, out_ch, k, cfg.stride, cfg.dilation])?;
        let shape = [out_ch, in_ch, k, k];
        let weight = path.var("weight", &shape, Init::default_weight())?;
        let bias = cfg
            .bias
            .then(|| path.var("bias", &[out_ch], Init::default_bias(fans(&shape)?.0)))
            .transpose()?;
        Ok(Conv2d {
            weight,
            bias,
            params: Conv2dParams {
                stride: (cfg.stride, cfg.stride),
                padding: (cfg.padding, cfg.padding),
                dilation: (cfg.dilation, cfg.dilation),
                groups: 1,
            },
        })
    }
}

impl Module for Conv2d {
    /// `[N, in, H, W]` to `[N, out, OH, OW]`. Errors as [`Tensor::conv2d`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, self.bias.as_ref(), &self.params)
    }
}

/// Options of [`ConvTranspose2d`] (PyTorch's defaults: stride 1, padding 0, output padding
/// 0, dilation 1, bias).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dConfig {
    /// Stride (square).
    pub stride: usize,
    /// Padding of the equivalent convolution (square).
    pub padding: usize,
    /// Extra rows/columns on one side of the output.
    pub output_padding: usize,
    /// Dilation (square).
    pub dilation: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Default for ConvTranspose2dConfig {
    fn default() -> Self {
        ConvTranspose2dConfig {
            stride: 1,
            padding: 0,
            output_padding: 0,
            dilation: 1,
            bias: true,
        }
    }
}

/// A 2-D transposed convolution: `weight [in, out, k, k]` (PyTorch's layout), optional
/// `bias [out]`, initialized as PyTorch does (its fan-in is `out * k * k`).
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels, k, k]`.
    pub weight: Tensor,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Tensor>,
    /// Stride, padding, output padding and dilation.
    pub params: ConvTranspose2dParams,
}

impl ConvTranspose2d {
    /// Creates the layer under `path`. Returns `Err` for zero sizes or a taken name.
    pub fn new(
        path: &Path,
        in_ch: usize,
        out_ch: usize,
        k: usize,
        cfg: ConvTranspose2dConfig,
    ) -> Result<ConvTranspose2d> {
        check_sizes(
            "ConvTranspose2d",
            &[in_ch, out_ch, k, cfg.stride, cfg.dilation],
        )?;
        let shape = [in_ch, out_ch, k, k];
        let weight = path.var("weight", &shape, Init::default_weight())?;
        let bias = cfg
            .bias
            .then(|| path.var("bias", &[out_ch], Init::default_bias(fans(&shape)?.0)))
            .transpose()?;
        Ok(ConvTranspose2d {
            weight,
            bias,
            params: ConvTranspose2dParams {
                stride: (cfg.stride, cfg.stride),
                padding: (cfg.padding, cfg.padding),
                output_padding: (cfg.output_padding, cfg.output_padding),
                dilation: (cfg.dilation, cfg.dilation),
                groups: 1,
            },
        })
    }
}

impl Module for ConvTranspose2d {
    /// `[N, in, H, W]` to `[N, out, OH, OW]`. Errors as [`Tensor::conv_transpose2d`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv_transpose2d(&self.weight, self.bias.as_ref(), &self.params)
    }
}
