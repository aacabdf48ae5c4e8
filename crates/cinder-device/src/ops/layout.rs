//! Layout ops: permute/transpose, narrow/slice, concat, constant pad, arange, eye and dtype
//! casts. Kernels in `shaders/layout.wgsl`; copies move raw 32-bit words, so they work on
//! `f32` and `u32` tensors alike.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_elems};
use crate::shape::{MAX_DIMS, checked_sum, coalesce, normalize_axis, numel, strides};
use crate::tensor::{DType, DeviceTensor};

fn k(entry: &'static str, reads: u32) -> Kernel {
    Kernel::new("layout", entry, reads, 1)
}

/// Rows and columns of the tile one workgroup of `transpose2d` moves (its workgroup size).
const TRANSPOSE_TILE: u32 = 16;

fn transpose2d() -> Kernel {
    k("transpose2d", 1).with_workgroup((TRANSPOSE_TILE, TRANSPOSE_TILE, 1))
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    let mut v: Vec<Kernel> = (1..=MAX_DIMS)
        .flat_map(|r| {
            ["strided_read", "strided_write"].map(|e| k(e, 1).with_constant("RANK", r as f64))
        })
        .collect();
    v.extend([
        transpose2d(),
        k("pad_constant", 1),
        k("arange_f32", 0),
        k("arange_u32", 0),
        k("eye", 0),
        k("cast_f32_u32", 1),
        k("cast_u32_f32", 1),
    ]);
    v
}

fn p1(n: usize, a: f32, b: f32, cols: usize) -> Params {
    Params::new().usize(n).f32(a).f32(b).usize(cols)
}

/// Records `dst[view(i)] = src[i]` (`write`) or `dst[i] = src[view(i)]` over `shape`, after
/// merging dimensions.
fn strided(
    op: &'static str,
    write: bool,
    src: &DeviceTensor,
    dst: &DeviceTensor,
    shape: &[usize],
    view_strides: &[usize],
    base: usize,
) -> Result<()> {
    let n = numel(shape);
    if n == 0 {
        return Ok(());
    }
    let (sh, st) = coalesce(op, shape, &[view_strides.to_vec()])?;
    if sh.len() > MAX_DIMS {
        return Err(Error::invalid(
            op,
            format!("more than {MAX_DIMS} non-mergeable dimensions"),
            shape,
        ));
    }
    let params = Params::new()
        .array(&sh, MAX_DIMS, 1)
        .array(&st[0], MAX_DIMS, 0)
        .usize(n)
        .usize(sh.len())
        .usize(base)
        .u32(0);
    let entry = if write {
        "strided_write"
    } else {
        "strided_read"
    };
    // The pipeline is specialized for the merged rank (RANK), so the index loop unrolls.
    let kernel = k(entry, 1).with_constant("RANK", sh.len().max(1) as f64);
    src.device()
        .dispatch(&kernel, &[src], &[dst], &params, grid_elems(n)?)
}

impl DeviceTensor {
    /// The tensor with its dimensions reordered: output dimension `i` is input dimension
    /// `dims[i]` (a copy). Returns `Err` when `dims` is not a permutation of `0..rank`.
    pub fn permute(&self, dims: &[usize]) -> Result<DeviceTensor> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if dims.len() != r
            || dims
                .iter()
                .any(|&d| d >= r || std::mem::replace(&mut seen[d], true))
        {
            return Err(Error::invalid(
                "permute",
                format!("{dims:?} is not a permutation of 0..{r}"),
                self.shape(),
            ));
        }
        if dims.iter().enumerate().all(|(i, &d)| i == d) {
            return Ok(self.clone());
        }
        let out_shape: Vec<usize> = dims.iter().map(|&d| self.shape()[d]).collect();
        if r >= 2 && dims[..r - 2].iter().enumerate().all(|(i, &d)| i == d) {
            return self.transpose_last2(out_shape);
        }
        let in_strides = strides(self.shape());
        let view: Vec<usize> = dims.iter().map(|&d| in_strides[d]).collect();
        let out = DeviceTensor::uninit_for("permute", self.device(), &out_shape, self.dtype())?;
        strided("permute", false, self, &out, &out_shape, &view, 0)?;
        Ok(out)
    }

    /// Swaps the last two dimensions with the division-free batched transpose kernel.
    fn transpose_last2(&self, out_shape: Vec<usize>) -> Result<DeviceTensor> {
        let r = self.rank();
        let (rows, cols) = (self.shape()[r - 2], self.shape()[r - 1]);
        let batch = numel(&self.shape()[..r - 2]);
        let out = DeviceTensor::uninit_for("permute", self.device(), &out_shape, self.dtype())?;
        let t = TRANSPOSE_TILE as usize;
        let groups = (rows.div_ceil(t), cols.div_ceil(t), batch);
        let max = crate::kernel::MAX_GROUPS_PER_DIM as usize;
        if out.numel() == 0 {
            return Ok(out);
        }
        if groups.0 > max || groups.1 > max || groups.2 > max {
            // Too many blocks for one grid: the general strided copy folds any size.
            let in_strides = strides(self.shape());
            let mut view = in_strides.clone();
            view.swap(r - 2, r - 1);
            strided("permute", false, self, &out, &out_shape, &view, 0)?;
            return Ok(out);
        }
        let p = Params::new().usize(rows).usize(cols).usize(batch).u32(0);
        let g = (groups.0 as u32, groups.1 as u32, groups.2 as u32);
        self.device()
            .dispatch(&transpose2d(), &[self], &[&out], &p, g)?;
        Ok(out)
    }

    /// Swaps two dimensions (negative indices allowed), as a copy. Returns
    /// [`Error::AxisOutOfRange`] for a bad dimension.
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<DeviceTensor> {
        let a = normalize_axis("transpose", d0, self.shape())?;
        let b = normalize_axis("transpose", d1, self.shape())?;
        let mut dims: Vec<usize> = (0..self.rank()).collect();
        dims.swap(a, b);
        self.permute(&dims)
    }

    /// The transpose of a 2-D tensor. Returns `Err` for other ranks.
    pub fn t(&self) -> Result<DeviceTensor> {
        if self.rank() != 2 {
            return Err(Error::invalid("t", "t() needs a 2-D tensor", self.shape()));
        }
        self.transpose(0, 1)
    }

    /// Elements `start..start + len` along `axis` (a copy). Returns `Err` when the range
    /// leaves the dimension or the axis is out of range.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<DeviceTensor> {
        let a = normalize_axis("narrow", axis, self.shape())?;
        if start
            .checked_add(len)
            .is_none_or(|end| end > self.shape()[a])
        {
            return Err(Error::invalid(
                "narrow",
                format!(
                    "range {start}..{} outside dimension {a} of size {}",
                    start.saturating_add(len),
                    self.shape()[a]
                ),
                self.shape(),
            ));
        }
        if len == self.shape()[a] {
            return Ok(self.clone());
        }
        let mut out_shape = self.shape().to_vec();
        out_shape[a] = len;
        let st = strides(self.shape());
        let out = DeviceTensor::uninit_for("narrow", self.device(), &out_shape, self.dtype())?;
        strided("narrow", false, self, &out, &out_shape, &st, start * st[a])?;
        Ok(out)
    }

    /// Elements `start..end` along `axis` (a copy), as Python's `x[start:end]` with
    /// non-negative bounds. Returns `Err` when `start > end` or `end` is past the dimension.
    pub fn slice(&self, axis: isize, start: usize, end: usize) -> Result<DeviceTensor> {
        if start > end {
            return Err(Error::invalid(
                "slice",
                format!("start {start} > end {end}"),
                self.shape(),
            ));
        }
        self.narrow(axis, start, end - start)
    }

    /// Joins tensors along `axis`; all must share dtype, rank and every other dimension.
    /// Returns `Err` on an empty list, a shape or dtype mismatch, or a bad axis, and
    /// [`Error::TooLarge`] when the joined size does not fit.
    pub fn concat(tensors: &[&DeviceTensor], axis: isize) -> Result<DeviceTensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("concat", "no tensors to concatenate", &[]))?;
        let a = normalize_axis("concat", axis, first.shape())?;
        let mut out_shape = first.shape().to_vec();
        out_shape[a] = 0;
        for t in tensors {
            t.expect_dtype("concat", first.dtype())?;
            let same_rest = t.rank() == first.rank()
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(d, (x, y))| d == a || x == y);
            if !same_rest {
                return Err(Error::shapes("concat", first.shape(), t.shape()));
            }
            out_shape[a] = checked_sum("concat", &out_shape, out_shape[a], t.shape()[a])?;
        }
        let out = DeviceTensor::uninit_for("concat", first.device(), &out_shape, first.dtype())?;
        let st = strides(&out_shape);
        let mut at = 0;
        for t in tensors {
            strided("concat", true, t, &out, t.shape(), &st, at * st[a])?;
            at += t.shape()[a];
        }
        Ok(out)
    }

    /// Constant padding. `pads` holds one `(before, after)` pair per dimension, outermost
    /// first; a list shorter than the rank pads the *last* `pads.len()` dimensions (so
    /// `[(1, 1), (2, 2)]` on an NCHW tensor pads H by 1 and W by 2, as
    /// `F.pad(x, (2, 2, 1, 1))`). New cells hold `value` (truncated for u32 tensors). Returns
    /// `Err` when `pads` is longer than the rank or the rank exceeds the kernel's limit, and
    /// [`Error::TooLarge`] when a padded size overflows or the result is too large.
    pub fn pad(&self, pads: &[(usize, usize)], value: f32) -> Result<DeviceTensor> {
        let r = self.rank();
        if pads.len() > r {
            return Err(Error::invalid(
                "pad",
                format!("{} pad pairs for rank {r}", pads.len()),
                self.shape(),
            ));
        }
        if r > MAX_DIMS {
            return Err(Error::invalid(
                "pad",
                format!("rank above {MAX_DIMS}"),
                self.shape(),
            ));
        }
        let mut before = vec![0; r];
        let mut out_shape = self.shape().to_vec();
        for (i, &(b, e)) in pads.iter().enumerate() {
            let d = r - pads.len() + i;
            before[d] = b;
            let grown = b.checked_add(e).and_then(|p| p.checked_add(out_shape[d]));
            out_shape[d] = grown.ok_or_else(|| Error::TooLarge {
                op: "pad",
                shape: self.shape().to_vec(),
                bytes: u64::MAX,
                limit: crate::shape::MAX_ELEMENTS as u64 * 4,
            })?;
        }
        let out = DeviceTensor::uninit_for("pad", self.device(), &out_shape, self.dtype())?;
        let n = out.numel();
        if n == 0 {
            return Ok(out);
        }
        let bits = match self.dtype() {
            DType::F32 => value.to_bits(),
            DType::U32 => value.max(0.0) as u32,
        };
        // A scalar pads like a rank-1 tensor of one element.
        let (os, bs, is) = if r == 0 {
            (vec![1], vec![0], vec![1])
        } else {
            (out_shape.clone(), before, self.shape().to_vec())
        };
        let params = Params::new()
            .array(&os, MAX_DIMS, 1)
            .array(&bs, MAX_DIMS, 0)
            .array(&is, MAX_DIMS, 1)
            .usize(n)
            .usize(os.len())
            .u32(bits)
            .u32(0);
        self.device().dispatch(
            &k("pad_constant", 1),
            &[self],
            &[&out],
            &params,
            grid_elems(n)?,
        )?;
        Ok(out)
    }

    /// `[start, start + step, ...]` up to (excluding) `end`, as f32. Returns `Err` when
    /// `step` is zero or has the wrong sign for the range, or a bound or the step is NaN or
    /// infinite (as PyTorch), and [`Error::TooLarge`] when the range has too many elements.
    pub fn arange(device: &Device, start: f32, end: f32, step: f32) -> Result<DeviceTensor> {
        let finite = start.is_finite() && end.is_finite() && step.is_finite();
        if !finite || step == 0.0 || (end as f64 - start as f64) * (step as f64) < 0.0 {
            return Err(Error::invalid(
                "arange",
                format!("bad range {start}..{end} step {step}"),
                &[],
            ));
        }
        // Finite and of the right sign: the count is a non-negative finite f64, and the cast
        // saturates, so a count past usize is refused below rather than wrapped.
        let n = ((end as f64 - start as f64) / step as f64).ceil().max(0.0) as usize;
        let out = DeviceTensor::uninit_for("arange", device, &[n], DType::F32)?;
        device.dispatch(
            &k("arange_f32", 0),
            &[],
            &[&out],
            &p1(n, start, step, 1),
            grid_elems(n)?,
        )?;
        Ok(out)
    }

    /// `[0, 1, ..., n - 1]` as u32. Returns [`Error::TooLarge`] past the device limit.
    pub fn arange_u32(device: &Device, n: usize) -> Result<DeviceTensor> {
        let out = DeviceTensor::uninit_for("arange_u32", device, &[n], DType::U32)?;
        device.dispatch(
            &k("arange_u32", 0),
            &[],
            &[&out],
            &p1(n, 0.0, 0.0, 1),
            grid_elems(n)?,
        )?;
        Ok(out)
    }

    /// The `n x m` identity-like matrix (ones on the main diagonal), f32. Returns
    /// [`Error::TooLarge`] past the device limit or when `n * m` does not fit.
    pub fn eye(device: &Device, n: usize, m: usize) -> Result<DeviceTensor> {
        let out = DeviceTensor::uninit_for("eye", device, &[n, m], DType::F32)?;
        let total = out.numel();
        device.dispatch(
            &k("eye", 0),
            &[],
            &[&out],
            &p1(total, 0.0, 0.0, m.max(1)),
            grid_elems(total)?,
        )?;
        Ok(out)
    }

    /// The tensor converted to `dtype`. f32 to u32 truncates toward zero; negative values
    /// and NaN give 0 and values past `u32::MAX` saturate. Same dtype returns `self`.
    pub fn to_dtype(&self, dtype: DType) -> Result<DeviceTensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let entry = if dtype == DType::U32 {
            "cast_f32_u32"
        } else {
            "cast_u32_f32"
        };
        let out = DeviceTensor::uninit_for("to_dtype", self.device(), self.shape(), dtype)?;
        let n = self.numel();
        self.device().dispatch(
            &k(entry, 1),
            &[self],
            &[&out],
            &p1(n, 0.0, 0.0, 1),
            grid_elems(n)?,
        )?;
        Ok(out)
    }
}
