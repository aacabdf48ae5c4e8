//! Softmax and log-softmax along an axis, and the backward helpers autograd uses. Kernels in
//! `shaders/softmax.wgsl`.
//!
//! The input is viewed as `[outer, len, inner]` around the axis; each of the `outer * inner`
//! rows is normalized independently. Short rows run one invocation per row; long rows run one
//! workgroup per row with the row's maximum and sum combined in workgroup memory. The forward
//! pass is stable (running maximum subtracted before `exp`).

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_1d};
use crate::shape::{normalize_axis, split_at_axis};
use crate::tensor::{DType, DeviceTensor};

/// Invocations per workgroup (`WG` in the shader).
const WG: u32 = 256;
/// Rows at most this long always use one invocation per row.
const ROWS_MAX_LEN: usize = 256;
/// With at least this many rows, rows up to this long use one invocation each: (rows, max
/// len) on GPUs, and on CPU adapters (lavapipe), whose emulated barriers make the
/// workgroup-per-row kernel the slower one there.
const ROWS_MANY_GPU: (usize, usize) = (4096, 4096);
const ROWS_MANY_CPU: (usize, usize) = (512, 16384);

fn kernel(entry: &'static str, reads: u32) -> Kernel {
    Kernel::new("softmax", entry, reads, 1).with_workgroup((WG, 1, 1))
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![
        kernel("softmax_rows", 1),
        kernel("softmax_wg", 1),
        kernel("softmax_bwd_rows", 2),
        kernel("softmax_bwd_wg", 2),
    ]
}

/// Dispatches forward (`inputs = [x]`) or backward (`inputs = [g, y]`) over `out`'s rows.
fn run(
    name: &'static str,
    backward: bool,
    mode: u32,
    inputs: &[&DeviceTensor],
    axis: isize,
) -> Result<DeviceTensor> {
    let x = inputs[0];
    let a = normalize_axis(name, axis, x.shape())?;
    for t in inputs {
        t.expect_dtype(name, DType::F32)?;
    }
    if let Some(y) = inputs.get(1)
        && y.shape() != x.shape()
    {
        return Err(Error::shapes(name, x.shape(), y.shape()));
    }
    let dev = x.device();
    let out = DeviceTensor::uninit_for(name, dev, x.shape(), DType::F32)?;
    let (outer, len, inner) = split_at_axis(x.shape(), a);
    let rows = outer * inner;
    if rows == 0 || len == 0 {
        return Ok(out);
    }
    let params = Params::new().usize(len).usize(inner).usize(rows).u32(mode);
    let (many, many_len) = if dev.is_cpu() {
        ROWS_MANY_CPU
    } else {
        ROWS_MANY_GPU
    };
    let per_row = len <= ROWS_MAX_LEN || (rows >= many && len <= many_len);
    let (entry, groups) = match (backward, per_row) {
        (false, true) => ("softmax_rows", grid_1d(rows, WG)?),
        (false, false) => ("softmax_wg", grid_1d(rows, 1)?),
        (true, true) => ("softmax_bwd_rows", grid_1d(rows, WG)?),
        (true, false) => ("softmax_bwd_wg", grid_1d(rows, 1)?),
    };
    dev.dispatch(
        &kernel(entry, inputs.len() as u32),
        inputs,
        &[&out],
        &params,
        groups,
    )?;
    Ok(out)
}

impl DeviceTensor {
    /// Softmax along `axis` (negative counts from the end): `exp(x - max) / sum(exp(x - max))`,
    /// stable for large inputs (`[1000, 0]` gives `[1, 0]`). Returns [`Error::AxisOutOfRange`]
    /// for a bad axis (a rank-0 tensor has none) and [`Error::DtypeMismatch`] for `u32`
    /// tensors.
    pub fn softmax(&self, axis: isize) -> Result<DeviceTensor> {
        run("softmax", false, 0, &[self], axis)
    }

    /// Log-softmax along `axis`: `(x - max) - log(sum(exp(x - max)))`, stable
    /// (`[1000, 0]` gives `[0, -1000]`). Errors as [`DeviceTensor::softmax`].
    pub fn log_softmax(&self, axis: isize) -> Result<DeviceTensor> {
        run("log_softmax", false, 1, &[self], axis)
    }

    /// Softmax's backward pass: with `self` the incoming gradient `g` and `y` the softmax
    /// output along `axis`, returns `y * (g - sum(g * y))` (the sum along `axis`). Errors as
    /// [`DeviceTensor::softmax`], plus [`Error::ShapeMismatch`] when `y`'s shape differs
    /// from `self`'s.
    pub fn softmax_backward(&self, y: &DeviceTensor, axis: isize) -> Result<DeviceTensor> {
        run("softmax_backward", true, 0, &[self, y], axis)
    }

    /// Log-softmax's backward pass: with `self` the incoming gradient `g` and `y` the
    /// log-softmax output along `axis`, returns `g - exp(y) * sum(g)` (the sum along `axis`).
    /// Errors as [`DeviceTensor::softmax_backward`].
    pub fn log_softmax_backward(&self, y: &DeviceTensor, axis: isize) -> Result<DeviceTensor> {
        run("log_softmax_backward", true, 1, &[self, y], axis)
    }
}
