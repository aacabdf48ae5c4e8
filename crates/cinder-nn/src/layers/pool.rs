//! Pooling layers: `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`.

use cinder_autograd::Tensor;
use cinder_device::ops::pool::Pool2dParams;
use cinder_device::{Error, Result};

use crate::module::Module;

/// Max pooling (PyTorch's `nn.MaxPool2d`; stride defaults to the window).
pub struct MaxPool2d {
    /// Window, stride, padding, dilation, ceil mode.
    pub params: Pool2dParams,
}

impl MaxPool2d {
    /// A `k x k` window with stride `k`, as `nn.MaxPool2d(k)`.
    pub fn new(k: usize) -> MaxPool2d {
        MaxPool2d {
            params: Pool2dParams::square(k),
        }
    }
    /// A `k x k` window with the given stride and padding.
    pub fn with(k: usize, stride: usize, padding: usize) -> MaxPool2d {
        MaxPool2d {
            params: Pool2dParams {
                kernel: (k, k),
                stride: (stride, stride),
                padding: (padding, padding),
                dilation: (1, 1),
                ceil_mode: false,
            },
        }
    }
}

impl Module for MaxPool2d {
    /// `[N, C, H, W]` pooled. Errors as [`Tensor::max_pool2d`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.max_pool2d(&self.params)?.0)
    }
}

/// Average pooling (PyTorch's `nn.AvgPool2d`, `count_include_pad = true` by default).
pub struct AvgPool2d {
    /// Window, stride, padding, ceil mode.
    pub params: Pool2dParams,
    /// Whether padded cells count in the divisor.
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// A `k x k` window with stride `k`, as `nn.AvgPool2d(k)`.
    pub fn new(k: usize) -> AvgPool2d {
        AvgPool2d {
            params: Pool2dParams::square(k),
            count_include_pad: true,
        }
    }
}

impl Module for AvgPool2d {
    /// `[N, C, H, W]` pooled. Errors as [`Tensor::avg_pool2d`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool2d(&self.params, self.count_include_pad)
    }
}

/// Adaptive average pooling to `(oh, ow)` (PyTorch's `nn.AdaptiveAvgPool2d`). Output 1x1
/// is a mean over H and W; larger outputs need H and W divisible by them.
pub struct AdaptiveAvgPool2d {
    /// Output height and width.
    pub output: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// Pooling to `oh x ow`.
    pub fn new(oh: usize, ow: usize) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d { output: (oh, ow) }
    }
}

impl Module for AdaptiveAvgPool2d {
    /// `[N, C, H, W]` to `[N, C, oh, ow]`. Returns `Err` for another rank, a zero output
    /// size, or (for outputs other than 1x1) sizes that do not divide the input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        let (oh, ow) = self.output;
        if s.len() != 4 || oh == 0 || ow == 0 {
            return Err(Error::invalid(
                "AdaptiveAvgPool2d",
                "expects [N, C, H, W] and a positive output size",
                &s,
            ));
        }
        if (oh, ow) == (1, 1) {
            let n = (s[2] * s[3]) as f32;
            return x.sum_axes(&[2, 3], true)?.mul_scalar(1.0 / n);
        }
        if !s[2].is_multiple_of(oh) || !s[3].is_multiple_of(ow) {
            return Err(Error::invalid(
                "AdaptiveAvgPool2d",
                format!(
                    "output {oh}x{ow} does not divide the input (only exact windows are supported)"
                ),
                &s,
            ));
        }
        let (kh, kw) = (s[2] / oh, s[3] / ow);
        let p = Pool2dParams {
            kernel: (kh, kw),
            stride: (kh, kw),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        };
        x.avg_pool2d(&p, true)
    }
}
