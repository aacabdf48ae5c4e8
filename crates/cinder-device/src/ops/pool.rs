//! 2-D max and average pooling over `[N, C, H, W]`, and their adaptive forms, with their
//! backward passes. Kernels in `shaders/pool2d.wgsl`; output sizes, `ceil_mode`,
//! `count_include_pad`, `divisor_override`, the adaptive windows and NaN handling follow
//! PyTorch.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_elems};
use crate::tensor::{DType, DeviceTensor};

/// Window, stride, padding and dilation of a 2-D pooling, as (height, width) pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    /// Window size.
    pub kernel: (usize, usize),
    /// Step between windows (PyTorch's default is the window size).
    pub stride: (usize, usize),
    /// Implicit padding on each side (at most half the window; padded cells never win a max
    /// and count in an average only with `count_include_pad`).
    pub padding: (usize, usize),
    /// Spacing between window taps (max pooling only; average pooling needs 1).
    pub dilation: (usize, usize),
    /// Use ceil instead of floor for the output size.
    pub ceil_mode: bool,
}

impl Pool2dParams {
    /// A `k x k` window with stride `k` and no padding, as `nn.MaxPool2d(k)`.
    pub fn square(k: usize) -> Self {
        Pool2dParams {
            kernel: (k, k),
            stride: (k, k),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }
}

fn k(entry: &'static str, reads: u32, writes: u32) -> Kernel {
    Kernel::new("pool2d", entry, reads, writes)
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![
        k("max_pool", 1, 2),
        k("max_pool_backward", 2, 1),
        k("max_pool_backward_scatter", 2, 1),
        k("avg_pool", 1, 1),
        k("avg_pool_backward", 1, 1),
        k("adaptive_avg_pool", 1, 1),
        k("adaptive_avg_pool_backward", 1, 1),
        k("adaptive_max_pool", 1, 2),
        k("adaptive_max_pool_backward", 2, 1),
    ]
}

/// The index [`DeviceTensor::max_pool2d`] gives a window that holds no input cell (possible
/// only with dilation, e.g. a 2-tap window dilated by 2 over one padded cell): its value is
/// `-inf` and its gradient goes nowhere.
pub const NO_INDEX: u32 = u32::MAX;

/// PyTorch's pooled size along one dimension (`k >= 1`, `s >= 1`), or `Err` naming what is
/// wrong: a window larger than the padded input, or sizes that overflow or pass the
/// kernels' i32 positions.
fn pool_out(
    op: &'static str,
    shape: &[usize],
    (size, k, s, p, d): (usize, usize, usize, usize, usize),
    ceil: bool,
) -> Result<usize> {
    let span = d
        .checked_mul(k.saturating_sub(1))
        .and_then(|v| v.checked_add(1));
    let padded = p.checked_mul(2).and_then(|v| v.checked_add(size));
    // The kernels compute window positions in i32.
    let fits = match (span, padded) {
        (Some(span), Some(padded)) => padded
            .checked_add(span)
            .and_then(|v| v.checked_add(s))
            .is_some_and(|v| v <= i32::MAX as usize),
        _ => false,
    };
    let (Some(span), Some(padded), true) = (span, padded, fits) else {
        return Err(Error::invalid(
            op,
            format!(
                "window {k}, stride {s}, padding {p} and dilation {d} on size {size} pass the \
                 kernels' 32-bit signed positions (2 * padding + size + dilation * (window - \
                 1) + 1 + stride must stay within i32)"
            ),
            shape,
        ));
    };
    let Some(avail) = padded.checked_sub(span) else {
        return Err(Error::invalid(
            op,
            format!(
                "window {k} dilated by {d} spans {span}, larger than the padded input size \
                 {padded}"
            ),
            shape,
        ));
    };
    let mut o = if ceil { avail.div_ceil(s) } else { avail / s } + 1;
    // The last window must start inside the input or the left padding.
    if ceil && (o - 1) * s >= size + p {
        o -= 1;
    }
    Ok(o)
}

struct Geom {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

fn geom(op: &'static str, shape: &[usize], p: &Pool2dParams) -> Result<Geom> {
    let [_, _, h, w] = <[usize; 4]>::try_from(shape)
        .map_err(|_| Error::invalid(op, "input must be [N, C, H, W]", shape))?;
    let (kh, kw) = p.kernel;
    if kh == 0
        || kw == 0
        || p.stride.0 == 0
        || p.stride.1 == 0
        || p.dilation.0 == 0
        || p.dilation.1 == 0
    {
        return Err(Error::invalid(
            op,
            "kernel, stride and dilation must be positive",
            shape,
        ));
    }
    if p.padding.0 > kh / 2 || p.padding.1 > kw / 2 {
        return Err(Error::invalid(
            op,
            format!(
                "padding {:?} exceeds half the window {:?}",
                p.padding, p.kernel
            ),
            shape,
        ));
    }
    let (s, pd, d, ceil) = (p.stride, p.padding, p.dilation, p.ceil_mode);
    let oh = pool_out(op, shape, (h, kh, s.0, pd.0, d.0), ceil)?;
    let ow = pool_out(op, shape, (w, kw, s.1, pd.1, d.1), ceil)?;
    Ok(Geom { h, w, oh, ow })
}

fn params(n: usize, g: &Geom, p: &Pool2dParams, count_pad: bool, divisor: usize) -> Params {
    Params::new()
        .usize(n)
        .usize(g.h)
        .usize(g.w)
        .usize(g.oh)
        .usize(g.ow)
        .usize(p.kernel.0)
        .usize(p.kernel.1)
        .usize(p.stride.0)
        .usize(p.stride.1)
        .usize(p.padding.0)
        .usize(p.padding.1)
        .usize(p.dilation.0)
        .usize(p.dilation.1)
        .u32(count_pad as u32)
        .usize(divisor)
}

/// Checks an average pooling's options: no dilation, and a positive divisor that fits.
fn avg_options(
    op: &'static str,
    shape: &[usize],
    p: &Pool2dParams,
    divisor_override: Option<usize>,
) -> Result<usize> {
    if p.dilation != (1, 1) {
        return Err(Error::invalid(op, "average pooling has no dilation", shape));
    }
    match divisor_override {
        None => Ok(0),
        Some(d) if d == 0 || d > u32::MAX as usize => Err(Error::invalid(
            op,
            format!("divisor_override = {d} must be positive (and fit in 32 bits)"),
            shape,
        )),
        Some(d) => Ok(d),
    }
}

/// Checks an adaptive pooling's input `[N, C, H, W]` (H, W positive) and output size.
fn adaptive_geom(op: &'static str, shape: &[usize], out: (usize, usize)) -> Result<Geom> {
    let [_, c, h, w] = <[usize; 4]>::try_from(shape)
        .map_err(|_| Error::invalid(op, "input must be [N, C, H, W]", shape))?;
    if c == 0 || h == 0 || w == 0 {
        return Err(Error::invalid(
            op,
            "input channels, height and width must be positive (as PyTorch)",
            shape,
        ));
    }
    // The kernels compute (i + 1) * H and (c + 1) * OH in u32.
    let fits = |a: usize, b: usize| {
        a.checked_add(1)
            .and_then(|a1| a1.checked_mul(b.max(1)))
            .is_some_and(|v| v <= u32::MAX as usize)
    };
    if !fits(h, out.0) || !fits(w, out.1) || !fits(out.0, h) || !fits(out.1, w) {
        return Err(Error::invalid(
            op,
            format!("output size {out:?} too large for the input"),
            shape,
        ));
    }
    Ok(Geom {
        h,
        w,
        oh: out.0,
        ow: out.1,
    })
}

fn adaptive_params(n: usize, g: &Geom) -> Params {
    Params::new()
        .usize(n)
        .usize(g.h)
        .usize(g.w)
        .usize(g.oh)
        .usize(g.ow)
        .array(&[], 10, 0)
}

impl DeviceTensor {
    /// Max pooling of `[N, C, H, W]`: returns the pooled values `[N, C, OH, OW]` and, as u32,
    /// the index `h * W + w` of each maximum within its input plane (PyTorch's indices; the
    /// first maximum wins ties; a window holding NaN gives NaN, indexed at its last NaN as
    /// PyTorch does; a window with no input cell gives `-inf` and [`NO_INDEX`]). Returns `Err`
    /// for another rank, a u32 input, zero sizes, padding above half the window, a window
    /// larger than the padded input, or sizes that overflow or pass the kernels' i32
    /// positions.
    pub fn max_pool2d(&self, p: &Pool2dParams) -> Result<(DeviceTensor, DeviceTensor)> {
        let op = "max_pool2d";
        self.expect_dtype(op, DType::F32)?;
        let g = geom(op, self.shape(), p)?;
        let shape = [self.shape()[0], self.shape()[1], g.oh, g.ow];
        let y = DeviceTensor::uninit_for(op, self.device(), &shape, DType::F32)?;
        let idx = DeviceTensor::uninit_for(op, self.device(), &shape, DType::U32)?;
        let n = y.numel();
        self.device().dispatch(
            &k("max_pool", 1, 2),
            &[self],
            &[&y, &idx],
            &params(n, &g, p, false, 0),
            grid_elems(n)?,
        )?;
        Ok((y, idx))
    }

    /// Backward of [`DeviceTensor::max_pool2d`]: routes `grad_out` to the recorded maxima,
    /// summing where windows overlap. Returns `Err` when the shapes disagree with `p`.
    pub fn max_pool2d_backward(
        grad_out: &DeviceTensor,
        indices: &DeviceTensor,
        input_shape: &[usize],
        p: &Pool2dParams,
    ) -> Result<DeviceTensor> {
        let op = "max_pool2d_backward";
        grad_out.expect_dtype(op, DType::F32)?;
        indices.expect_dtype(op, DType::U32)?;
        let g = geom(op, input_shape, p)?;
        let want = [input_shape[0], input_shape[1], g.oh, g.ow];
        if grad_out.shape() != want || indices.shape() != want {
            return Err(Error::shapes(op, grad_out.shape(), &want));
        }
        let dev = grad_out.device();
        // Windows that cannot overlap (the span of one fits in a stride) take the scatter
        // kernel, one write per output cell into zeros; others gather per input cell.
        let disjoint = |k: usize, s: usize, d: usize| d * (k - 1) < s;
        let (entry, gx, n) = if disjoint(p.kernel.0, p.stride.0, p.dilation.0)
            && disjoint(p.kernel.1, p.stride.1, p.dilation.1)
        {
            let gx = DeviceTensor::zeros(dev, input_shape)?;
            ("max_pool_backward_scatter", gx, grad_out.numel())
        } else {
            let gx = DeviceTensor::uninit_for(op, dev, input_shape, DType::F32)?;
            let n = gx.numel();
            ("max_pool_backward", gx, n)
        };
        dev.dispatch(
            &k(entry, 2, 1),
            &[grad_out, indices],
            &[&gx],
            &params(n, &g, p, false, 0),
            grid_elems(n)?,
        )?;
        Ok(gx)
    }

    /// Average pooling of `[N, C, H, W]`. The divisor is `divisor_override` when given, else
    /// the window's size clipped to the padded input (`count_include_pad`, PyTorch's default)
    /// or its number of real cells. Returns `Err` as [`DeviceTensor::max_pool2d`], and for a
    /// dilation other than 1 or a zero `divisor_override`.
    pub fn avg_pool2d(
        &self,
        p: &Pool2dParams,
        count_include_pad: bool,
        divisor_override: Option<usize>,
    ) -> Result<DeviceTensor> {
        let op = "avg_pool2d";
        self.expect_dtype(op, DType::F32)?;
        let divisor = avg_options(op, self.shape(), p, divisor_override)?;
        let g = geom(op, self.shape(), p)?;
        let shape = [self.shape()[0], self.shape()[1], g.oh, g.ow];
        let y = DeviceTensor::uninit_for(op, self.device(), &shape, DType::F32)?;
        let n = y.numel();
        self.device().dispatch(
            &k("avg_pool", 1, 1),
            &[self],
            &[&y],
            &params(n, &g, p, count_include_pad, divisor),
            grid_elems(n)?,
        )?;
        Ok(y)
    }

    /// Backward of [`DeviceTensor::avg_pool2d`]: spreads each output gradient over its window
    /// with the same divisor. Returns `Err` when the shapes disagree with `p`, or for the
    /// options [`DeviceTensor::avg_pool2d`] rejects.
    pub fn avg_pool2d_backward(
        grad_out: &DeviceTensor,
        input_shape: &[usize],
        p: &Pool2dParams,
        count_include_pad: bool,
        divisor_override: Option<usize>,
    ) -> Result<DeviceTensor> {
        let op = "avg_pool2d_backward";
        grad_out.expect_dtype(op, DType::F32)?;
        let divisor = avg_options(op, input_shape, p, divisor_override)?;
        let g = geom(op, input_shape, p)?;
        let want = [input_shape[0], input_shape[1], g.oh, g.ow];
        if grad_out.shape() != want {
            return Err(Error::shapes(op, grad_out.shape(), &want));
        }
        let gx = DeviceTensor::uninit_for(op, grad_out.device(), input_shape, DType::F32)?;
        let n = gx.numel();
        grad_out.device().dispatch(
            &k("avg_pool_backward", 1, 1),
            &[grad_out],
            &[&gx],
            &params(n, &g, p, count_include_pad, divisor),
            grid_elems(n)?,
        )?;
        Ok(gx)
    }

    /// Adaptive average pooling of `[N, C, H, W]` to `[N, C, OH, OW]` = `output`, with
    /// PyTorch's windows: output row `i` averages input rows `floor(i * H / OH)` to
    /// `ceil((i + 1) * H / OH)` (exclusive), and likewise for columns; outputs larger than the
    /// input repeat cells. A zero output size gives an empty tensor. Returns `Err` for another
    /// rank, a u32 input, zero input channels, height or width, or sizes whose products pass
    /// 2^32.
    pub fn adaptive_avg_pool2d(&self, output: (usize, usize)) -> Result<DeviceTensor> {
        let op = "adaptive_avg_pool2d";
        self.expect_dtype(op, DType::F32)?;
        let g = adaptive_geom(op, self.shape(), output)?;
        let shape = [self.shape()[0], self.shape()[1], g.oh, g.ow];
        let y = DeviceTensor::uninit_for(op, self.device(), &shape, DType::F32)?;
        let n = y.numel();
        self.device().dispatch(
            &k("adaptive_avg_pool", 1, 1),
            &[self],
            &[&y],
            &adaptive_params(n, &g),
            grid_elems(n)?,
        )?;
        Ok(y)
    }

    /// Backward of [`DeviceTensor::adaptive_avg_pool2d`]: each input cell sums the gradients
    /// of the windows containing it, each over its window's size. Returns `Err` when
    /// `grad_out` is not `[N, C, OH, OW]` for `input_shape`, or as the forward.
    pub fn adaptive_avg_pool2d_backward(
        grad_out: &DeviceTensor,
        input_shape: &[usize],
    ) -> Result<DeviceTensor> {
        let op = "adaptive_avg_pool2d_backward";
        grad_out.expect_dtype(op, DType::F32)?;
        let gs = grad_out.shape();
        if gs.len() != 4 {
            return Err(Error::shapes(op, gs, input_shape));
        }
        let g = adaptive_geom(op, input_shape, (gs[2], gs[3]))?;
        if gs[..2] != input_shape[..2] {
            return Err(Error::shapes(op, gs, input_shape));
        }
        if g.oh == 0 || g.ow == 0 {
            // No window: no gradient (the kernel's window spans assume one).
            return DeviceTensor::zeros(grad_out.device(), input_shape);
        }
        let gx = DeviceTensor::uninit_for(op, grad_out.device(), input_shape, DType::F32)?;
        let n = gx.numel();
        grad_out.device().dispatch(
            &k("adaptive_avg_pool_backward", 1, 1),
            &[grad_out],
            &[&gx],
            &adaptive_params(n, &g),
            grid_elems(n)?,
        )?;
        Ok(gx)
    }

    /// Adaptive max pooling of `[N, C, H, W]` to `output` over the windows of
    /// [`DeviceTensor::adaptive_avg_pool2d`]: the maxima and, as u32, their indices
    /// `h * W + w` within the input plane (ties and NaN as [`DeviceTensor::max_pool2d`]).
    /// Returns `Err` as [`DeviceTensor::adaptive_avg_pool2d`].
    pub fn adaptive_max_pool2d(
        &self,
        output: (usize, usize),
    ) -> Result<(DeviceTensor, DeviceTensor)> {
        let op = "adaptive_max_pool2d";
        self.expect_dtype(op, DType::F32)?;
        let g = adaptive_geom(op, self.shape(), output)?;
        let shape = [self.shape()[0], self.shape()[1], g.oh, g.ow];
        let y = DeviceTensor::uninit_for(op, self.device(), &shape, DType::F32)?;
        let idx = DeviceTensor::uninit_for(op, self.device(), &shape, DType::U32)?;
        let n = y.numel();
        self.device().dispatch(
            &k("adaptive_max_pool", 1, 2),
            &[self],
            &[&y, &idx],
            &adaptive_params(n, &g),
            grid_elems(n)?,
        )?;
        Ok((y, idx))
    }

    /// Backward of [`DeviceTensor::adaptive_max_pool2d`]: routes `grad_out` to the recorded
    /// maxima, summing where windows share one. Returns `Err` when the shapes disagree.
    pub fn adaptive_max_pool2d_backward(
        grad_out: &DeviceTensor,
        indices: &DeviceTensor,
        input_shape: &[usize],
    ) -> Result<DeviceTensor> {
        let op = "adaptive_max_pool2d_backward";
        grad_out.expect_dtype(op, DType::F32)?;
        indices.expect_dtype(op, DType::U32)?;
        let gs = grad_out.shape();
        if gs.len() != 4 || indices.shape() != gs {
            return Err(Error::shapes(op, gs, indices.shape()));
        }
        let g = adaptive_geom(op, input_shape, (gs[2], gs[3]))?;
        if gs[..2] != input_shape[..2] {
            return Err(Error::shapes(op, gs, input_shape));
        }
        if g.oh == 0 || g.ow == 0 {
            // No window: no gradient (the kernel's window spans assume one).
            return DeviceTensor::zeros(grad_out.device(), input_shape);
        }
        let gx = DeviceTensor::uninit_for(op, grad_out.device(), input_shape, DType::F32)?;
        let n = gx.numel();
        grad_out.device().dispatch(
            &k("adaptive_max_pool_backward", 2, 1),
            &[grad_out, indices],
            &[&gx],
            &adaptive_params(n, &g),
            grid_elems(n)?,
        )?;
        Ok(gx)
    }
}
