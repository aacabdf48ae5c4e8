//! `Conv2d` and `ConvTranspose2d`, PyTorch's layers (groups, non-square kernels, strides,
//! paddings and dilations included).

use cinder_autograd::Tensor;
use cinder_device::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use cinder_device::{Error, Result};

use crate::init::{Init, fans};
use crate::module::Module;
use crate::var_store::Path;

/// A (height, width) size given as PyTorch takes it: one number for both (`3`), or a pair
/// (`(3, 5)` or `[3, 5]`). Used for kernel sizes, strides, paddings and dilations.
pub trait IntoPair {
    /// The `(height, width)` pair.
    fn into_pair(self) -> (usize, usize);
}

impl IntoPair for usize {
    fn into_pair(self) -> (usize, usize) {
        (self, self)
    }
}

impl IntoPair for (usize, usize) {
    fn into_pair(self) -> (usize, usize) {
        self
    }
}

impl IntoPair for [usize; 2] {
    fn into_pair(self) -> (usize, usize) {
        (self[0], self[1])
    }
}

/// Options of [`Conv2d`] (PyTorch's defaults: stride 1, padding 0, dilation 1, groups 1,
/// bias). Set fields directly (`Conv2dConfig { stride: (2, 2), ..Default::default() }`) or
/// chain the setters, which take one number or a pair
/// (`Conv2dConfig::default().stride(2).padding((1, 0))`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Stride (height, width).
    pub stride: (usize, usize),
    /// Zero padding on each side (height, width).
    pub padding: (usize, usize),
    /// Dilation (height, width).
    pub dilation: (usize, usize),
    /// Channel groups (`in` and `out` must be multiples; `groups = in` is depthwise).
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
        }
    }
}

impl Conv2dConfig {
    /// Sets the stride (one number or a pair).
    pub fn stride(mut self, s: impl IntoPair) -> Self {
        self.stride = s.into_pair();
        self
    }
    /// Sets the zero padding (one number or a pair).
    pub fn padding(mut self, p: impl IntoPair) -> Self {
        self.padding = p.into_pair();
        self
    }
    /// Sets the dilation (one number or a pair).
    pub fn dilation(mut self, d: impl IntoPair) -> Self {
        self.dilation = d.into_pair();
        self
    }
    /// Sets the channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// Sets whether the layer has a bias.
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }
}

/// A 2-D convolution: `weight [out, in / groups, kh, kw]`, optional `bias [out]`,
/// initialized as PyTorch does (uniform in `±1/sqrt(in / groups * kh * kw)`).
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation and groups.
    pub params: Conv2dParams,
}

fn check_sizes(op: &'static str, sizes: &[usize]) -> Result<()> {
    if sizes.contains(&0) {
        return Err(Error::invalid(
            op,
            "channels, kernel, stride, dilation and groups must be positive",
            sizes,
        ));
    }
    Ok(())
}

fn check_groups(op: &'static str, in_ch: usize, out_ch: usize, groups: usize) -> Result<()> {
    if !in_ch.is_multiple_of(groups) || !out_ch.is_multiple_of(groups) {
        return Err(Error::invalid(
            op,
            format!(
                "in_channels {in_ch} and out_channels {out_ch} must be divisible by groups {groups}"
            ),
            &[in_ch, out_ch, groups],
        ));
    }
    Ok(())
}

impl Conv2d {
    /// Creates the layer under `path`; `k` is the kernel size, one number or `(kh, kw)`.
    /// Returns `Err` for zero sizes, channels not divisible by `groups`, or a taken name.
    pub fn new(
        path: &Path,
        in_ch: usize,
        out_ch: usize,
        k: impl IntoPair,
        cfg: Conv2dConfig,
    ) -> Result<Conv2d> {
        let (kh, kw) = k.into_pair();
        let (s, d) = (cfg.stride, cfg.dilation);
        check_sizes(
            "Conv2d",
            &[in_ch, out_ch, kh, kw, s.0, s.1, d.0, d.1, cfg.groups],
        )?;
        check_groups("Conv2d", in_ch, out_ch, cfg.groups)?;
        let shape = [out_ch, in_ch / cfg.groups, kh, kw];
        let weight = path.var("weight", &shape, Init::default_weight())?;
        let bias = cfg
            .bias
            .then(|| path.var("bias", &[out_ch], Init::default_bias(fans(&shape)?.0)))
            .transpose()?;
        Ok(Conv2d {
            weight,
            bias,
            params: Conv2dParams {
                stride: cfg.stride,
                padding: cfg.padding,
                dilation: cfg.dilation,
                groups: cfg.groups,
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
/// 0, dilation 1, groups 1, bias). Fields or chained setters, as [`Conv2dConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dConfig {
    /// Stride (height, width).
    pub stride: (usize, usize),
    /// Padding of the equivalent convolution (height, width).
    pub padding: (usize, usize),
    /// Extra rows/columns on one side of the output; each below the stride or the dilation.
    pub output_padding: (usize, usize),
    /// Dilation (height, width).
    pub dilation: (usize, usize),
    /// Channel groups (`in` and `out` must be multiples).
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Default for ConvTranspose2dConfig {
    fn default() -> Self {
        ConvTranspose2dConfig {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
        }
    }
}

impl ConvTranspose2dConfig {
    /// Sets the stride (one number or a pair).
    pub fn stride(mut self, s: impl IntoPair) -> Self {
        self.stride = s.into_pair();
        self
    }
    /// Sets the padding (one number or a pair).
    pub fn padding(mut self, p: impl IntoPair) -> Self {
        self.padding = p.into_pair();
        self
    }
    /// Sets the output padding (one number or a pair).
    pub fn output_padding(mut self, p: impl IntoPair) -> Self {
        self.output_padding = p.into_pair();
        self
    }
    /// Sets the dilation (one number or a pair).
    pub fn dilation(mut self, d: impl IntoPair) -> Self {
        self.dilation = d.into_pair();
        self
    }
    /// Sets the channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// Sets whether the layer has a bias.
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }
}

/// A 2-D transposed convolution: `weight [in, out / groups, kh, kw]` (PyTorch's layout),
/// optional `bias [out]`, initialized as PyTorch does (its fan-in is
/// `out / groups * kh * kw`).
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels / groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Tensor>,
    /// Stride, padding, output padding, dilation and groups.
    pub params: ConvTranspose2dParams,
}

impl ConvTranspose2d {
    /// Creates the layer under `path`; `k` is the kernel size, one number or `(kh, kw)`.
    /// Returns `Err` for zero sizes, channels not divisible by `groups`, an output padding
    /// not below the stride or the dilation, or a taken name.
    pub fn new(
        path: &Path,
        in_ch: usize,
        out_ch: usize,
        k: impl IntoPair,
        cfg: ConvTranspose2dConfig,
    ) -> Result<ConvTranspose2d> {
        let op = "ConvTranspose2d";
        let (kh, kw) = k.into_pair();
        let (s, d) = (cfg.stride, cfg.dilation);
        check_sizes(op, &[in_ch, out_ch, kh, kw, s.0, s.1, d.0, d.1, cfg.groups])?;
        check_groups(op, in_ch, out_ch, cfg.groups)?;
        let o = cfg.output_padding;
        if (o.0 >= s.0 && o.0 >= d.0) || (o.1 >= s.1 && o.1 >= d.1) {
            return Err(Error::invalid(
                op,
                format!("output_padding {o:?} must be smaller than stride {s:?} or dilation {d:?}"),
                &[in_ch, out_ch],
            ));
        }
        let shape = [in_ch, out_ch / cfg.groups, kh, kw];
        let weight = path.var("weight", &shape, Init::default_weight())?;
        let bias = cfg
            .bias
            .then(|| path.var("bias", &[out_ch], Init::default_bias(fans(&shape)?.0)))
            .transpose()?;
        Ok(ConvTranspose2d {
            weight,
            bias,
            params: ConvTranspose2dParams {
                stride: cfg.stride,
                padding: cfg.padding,
                output_padding: cfg.output_padding,
                dilation: cfg.dilation,
                groups: cfg.groups,
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
