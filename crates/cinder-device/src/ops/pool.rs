//! 2-D max and average pooling over `[N, C, H, W]` with their backward passes. Kernels in
//! `shaders/pool2d.wgsl`; output sizes and `ceil_mode` follow PyTorch.

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
    /// Implicit padding on each side (at most half the window).
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
    ]
}

/// PyTorch's pooled size along one dimension.
fn pool_out(size: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Option<usize> {
    let span = d * (k - 1) + 1;
    let avail = (size + 2 * p).checked_sub(span)?;
    let mut o = if ceil { avail.div_ceil(s) } else { avail / s } + 1;
    // The last window must start inside the input or the left padding.
    if ceil && (o - 1) * s >= size + p {
        o -= 1;
    }
    Some(o)
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
    let oh = pool_out(h, kh, p.stride.0, p.padding.0, p.dilation.0, p.ceil_mode);
    let ow = pool_out(w, kw, p.stride.1, p.padding.1, p.dilation.1, p.ceil_mode);
    match (oh, ow) {
        (Some(oh), Some(ow)) => Ok(Geom { h, w, oh, ow }),
        _ => Err(Error::invalid(
            op,
            format!("window {:?} larger than the padded input", p.kernel),
            shape,
        )),
    }
}

fn params(n: usize, g: &Geom, p: &Pool2dParams, count_pad: bool) -> Params {
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
}

impl DeviceTensor {
    /// Max pooling of `[N, C, H, W]`: returns the pooled values `[N, C, OH, OW]` and, as u32,
    /// the index `h * W + w` of each maximum within its input plane (PyTorch's indices; the
    /// first maximum wins ties). Returns `Err` for another rank, a u32 input, zero sizes,
    /// padding above half the window, or a window larger than the padded input.
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
            &params(n, &g, p, false),
            grid_elems(n),
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
            &params(n, &g, p, false),
            grid_elems(n),
        )?;
        Ok(gx)
    }

    /// Average pooling of `[N, C, H, W]`. With `count_include_pad` the divisor counts padded
    /// cells (PyTorch's default), else only real ones. Returns `Err` as
    /// [`DeviceTensor::max_pool2d`], and for a dilation other than 1.
    pub fn avg_pool2d(&self, p: &Pool2dParams, count_include_pad: bool) -> Result<DeviceTensor> {
        let op = "avg_pool2d";
        self.expect_dtype(op, DType::F32)?;
        if p.dilation != (1, 1) {
            return Err(Error::invalid(
                op,
                "average pooling has no dilation",
                self.shape(),
            ));
        }
        let g = geom(op, self.shape(), p)?;
        let shape = [self.shape()[0], self.shape()[1], g.oh, g.ow];
        let y = DeviceTensor::uninit_for(op, self.device(), &shape, DType::F32)?;
        let n = y.numel();
        self.device().dispatch(
            &k("avg_pool", 1, 1),
            &[self],
            &[&y],
            &params(n, &g, p, count_include_pad),
            grid_elems(n),
        )?;
        Ok(y)
    }

    /// Backward of [`DeviceTensor::avg_pool2d`]: spreads each output gradient over its window
    /// with the same divisor. Returns `Err` when the shapes disagree with `p`.
    pub fn avg_pool2d_backward(
        grad_out: &DeviceTensor,
        input_shape: &[usize],
        p: &Pool2dParams,
        count_include_pad: bool,
    ) -> Result<DeviceTensor> {
        let op = "avg_pool2d_backward";
        grad_out.expect_dtype(op, DType::F32)?;
        if p.dilation != (1, 1) {
            return Err(Error::invalid(
                op,
                "average pooling has no dilation",
                input_shape,
            ));
        }
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
            &params(n, &g, p, count_include_pad),
            grid_elems(n),
        )?;
        Ok(gx)
    }
}
