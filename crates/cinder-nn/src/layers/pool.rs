//! Pooling layers: `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`, `AdaptiveMaxPool2d`.

use cinder_autograd::Tensor;
use cinder_device::ops::pool::Pool2dParams;
use cinder_device::{Error, Result};

use super::conv::IntoPair;
use crate::module::Module;

fn window(k: impl IntoPair) -> Pool2dParams {
    let k = k.into_pair();
    Pool2dParams {
        kernel: k,
        stride: k,
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    }
}

/// Max pooling (PyTorch's `nn.MaxPool2d`; stride defaults to the window). Options are set
/// by chained calls: `MaxPool2d::new(3).stride(2).padding(1)`, each taking one number or a
/// pair. The values are checked when the layer runs (as PyTorch does).
pub struct MaxPool2d {
    /// Window, stride, padding, dilation, ceil mode.
    pub params: Pool2dParams,
}

impl MaxPool2d {
    /// A `k` window (one number or `(kh, kw)`) with stride `k`, as `nn.MaxPool2d(k)`.
    pub fn new(k: impl IntoPair) -> MaxPool2d {
        MaxPool2d { params: window(k) }
    }
    /// Sets the stride.
    pub fn stride(mut self, s: impl IntoPair) -> MaxPool2d {
        self.params.stride = s.into_pair();
        self
    }
    /// Sets the implicit padding (at most half the window), which never wins a max.
    pub fn padding(mut self, p: impl IntoPair) -> MaxPool2d {
        self.params.padding = p.into_pair();
        self
    }
    /// Sets the spacing between window taps.
    pub fn dilation(mut self, d: impl IntoPair) -> MaxPool2d {
        self.params.dilation = d.into_pair();
        self
    }
    /// Uses ceil instead of floor for the output size.
    pub fn ceil_mode(mut self, ceil: bool) -> MaxPool2d {
        self.params.ceil_mode = ceil;
        self
    }
    /// The pooled values and, as a u32 tensor, the index of each maximum within its input
    /// plane (PyTorch's `return_indices=True`). Errors as [`Tensor::max_pool2d`].
    pub fn forward_with_indices(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        x.max_pool2d(&self.params)
    }
}

impl Module for MaxPool2d {
    /// `[N, C, H, W]` pooled. Errors as [`Tensor::max_pool2d`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.max_pool2d(&self.params)?.0)
    }
}

/// Average pooling (PyTorch's `nn.AvgPool2d`: stride defaults to the window,
/// `count_include_pad = true`, no divisor override). Options by chained calls, as
/// [`MaxPool2d`].
pub struct AvgPool2d {
    /// Window, stride, padding, ceil mode (dilation must stay 1).
    pub params: Pool2dParams,
    /// Whether padded cells count in the divisor.
    pub count_include_pad: bool,
    /// A divisor used instead of the window's size.
    pub divisor_override: Option<usize>,
}

impl AvgPool2d {
    /// A `k` window (one number or `(kh, kw)`) with stride `k`, as `nn.AvgPool2d(k)`.
    pub fn new(k: impl IntoPair) -> AvgPool2d {
        AvgPool2d {
            params: window(k),
            count_include_pad: true,
            divisor_override: None,
        }
    }
    /// Sets the stride.
    pub fn stride(mut self, s: impl IntoPair) -> AvgPool2d {
        self.params.stride = s.into_pair();
        self
    }
    /// Sets the implicit zero padding (at most half the window).
    pub fn padding(mut self, p: impl IntoPair) -> AvgPool2d {
        self.params.padding = p.into_pair();
        self
    }
    /// Uses ceil instead of floor for the output size.
    pub fn ceil_mode(mut self, ceil: bool) -> AvgPool2d {
        self.params.ceil_mode = ceil;
        self
    }
    /// Sets whether padded cells count in the divisor.
    pub fn count_include_pad(mut self, include: bool) -> AvgPool2d {
        self.count_include_pad = include;
        self
    }
    /// Divides every window's sum by `d` instead of its size (`Some(0)` fails when the layer
    /// runs, as PyTorch's).
    pub fn divisor_override(mut self, d: Option<usize>) -> AvgPool2d {
        self.divisor_override = d;
        self
    }
}

impl Module for AvgPool2d {
    /// `[N, C, H, W]` pooled. Errors as [`Tensor::avg_pool2d`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool2d(&self.params, self.count_include_pad, self.divisor_override)
    }
}

/// The output size of an adaptive pooling for input `s` (`None` keeps the input's size), or
/// `Err` for an input that is not `[N, C, H, W]`.
fn adaptive_size(
    op: &'static str,
    s: &[usize],
    out: (Option<usize>, Option<usize>),
) -> Result<(usize, usize)> {
    if s.len() != 4 {
        return Err(Error::invalid(op, "expects [N, C, H, W]", s));
    }
    Ok((out.0.unwrap_or(s[2]), out.1.unwrap_or(s[3])))
}

/// Adaptive average pooling to a fixed output size (PyTorch's `nn.AdaptiveAvgPool2d`), with
/// PyTorch's windows: output row `i` averages rows `floor(i * H / OH)` to
/// `ceil((i + 1) * H / OH)`, so any output size works, larger than the input included.
pub struct AdaptiveAvgPool2d {
    /// Output height and width; `None` keeps the input's.
    pub output: (Option<usize>, Option<usize>),
}

impl AdaptiveAvgPool2d {
    /// Pooling to `size`: one number (square) or `(oh, ow)`.
    pub fn new(size: impl IntoPair) -> AdaptiveAvgPool2d {
        let (h, w) = size.into_pair();
        AdaptiveAvgPool2d {
            output: (Some(h), Some(w)),
        }
    }
    /// Pooling to `(oh, ow)` where `None` keeps that input size (PyTorch's `(None, 7)`).
    pub fn with_sizes(oh: Option<usize>, ow: Option<usize>) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d { output: (oh, ow) }
    }
}

impl Module for AdaptiveAvgPool2d {
    /// `[N, C, H, W]` to `[N, C, oh, ow]` (an empty tensor for a zero output size). Returns
    /// `Err` for another rank or zero input channels, height or width, as
    /// [`Tensor::adaptive_avg_pool2d`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let size = adaptive_size("AdaptiveAvgPool2d", &x.shape(), self.output)?;
        x.adaptive_avg_pool2d(size)
    }
}

/// Adaptive max pooling to a fixed output size (PyTorch's `nn.AdaptiveMaxPool2d`), over the
/// windows of [`AdaptiveAvgPool2d`]; NaN and ties as [`MaxPool2d`].
pub struct AdaptiveMaxPool2d {
    /// Output height and width; `None` keeps the input's.
    pub output: (Option<usize>, Option<usize>),
}

impl AdaptiveMaxPool2d {
    /// Pooling to `size`: one number (square) or `(oh, ow)`.
    pub fn new(size: impl IntoPair) -> AdaptiveMaxPool2d {
        let (h, w) = size.into_pair();
        AdaptiveMaxPool2d {
            output: (Some(h), Some(w)),
        }
    }
    /// Pooling to `(oh, ow)` where `None` keeps that input size.
    pub fn with_sizes(oh: Option<usize>, ow: Option<usize>) -> AdaptiveMaxPool2d {
        AdaptiveMaxPool2d { output: (oh, ow) }
    }
    /// The pooled values and, as a u32 tensor, the index of each maximum within its input
    /// plane (PyTorch's `return_indices=True`). Errors as [`Module::forward`].
    pub fn forward_with_indices(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let size = adaptive_size("AdaptiveMaxPool2d", &x.shape(), self.output)?;
        x.adaptive_max_pool2d(size)
    }
}

impl Module for AdaptiveMaxPool2d {
    /// `[N, C, H, W]` to `[N, C, oh, ow]`. Returns `Err` for another rank or zero input channels,
    /// height or width, as [`Tensor::adaptive_max_pool2d`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_indices(x)?.0)
    }
}
