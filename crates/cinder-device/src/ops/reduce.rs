//! Reductions: sum, mean, max, min, argmax, argmin, logsumexp and variance along one axis or
//! over the whole tensor, sums over several axes, and `sum_to_shape` (the un-broadcast that
//! backward passes need). Kernels in `shaders/reduce.wgsl`.
//!
//! The input is viewed as `[outer, len, inner]` around the reduced axis. Many outputs with a
//! short axis run one invocation per output (`reduce_rows`); a long axis with few outputs
//! (whole-tensor reductions included) runs a tree: each workgroup reduces a chunk of the axis
//! in workgroup memory into a partial state, and further passes combine the states until one
//! is left. Nothing is read back to choose a path: the choice depends on the shape and on
//! whether the adapter is a CPU one (lavapipe), where barriers are expensive.
//!
//! Empty axes (length 0), as PyTorch: `sum` gives 0, `logsumexp` -inf, `mean` and `var` NaN;
//! `max`, `min`, `argmax` and `argmin` return [`Error::InvalidArgument`].
//! NaN inputs propagate as in PyTorch: `sum`/`mean`/`var`/`logsumexp` give NaN, `max`/`min`
//! give NaN, and `argmax`/`argmin` give the index of the first NaN.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, MAX_GROUPS_PER_DIM, Params, grid_1d};
use crate::shape::{broadcast_shapes, normalize_axis, split_at_axis};
use crate::tensor::{DType, DeviceTensor};

/// Invocations per workgroup of every reduce kernel (`WG` in the shader).
const WG: usize = 256;
/// Input elements one workgroup reduces in a chunked pass (64 per invocation: few
/// workgroups, so few barriers; on lavapipe 8 per invocation made sum_all 5x slower).
const CHUNK_IN: usize = WG * 64;
/// Partial states one workgroup combines in a later pass (small, so that a 1M-element
/// reduction already runs every pass kind: 62 chunks, then 2, then 1).
const CHUNK_ST: usize = 32;
/// Axes at most this long always use one invocation per output.
const ROWS_MAX_LEN: usize = 256;
/// (outputs, len): with at least this many outputs, axes up to this long also use one
/// invocation per output. Separate values for GPUs and for CPU adapters (lavapipe), where
/// barriers are emulated and cost far more than a serial loop (measured there: summing
/// axis 0 of [4096, 1024] took 3.4 ms with one invocation per output, 30 ms with a
/// workgroup per output; a conv bias gradient, 384 rows of 784, took 4.9-7.2 ms through
/// the tree and 0.2 ms with one invocation per row: 64 outputs already fill 2 cores of
/// 8 lanes several times).
const ROWS_MANY_GPU: (usize, usize) = (4096, 4096);
const ROWS_MANY_CPU: (usize, usize) = (64, 16384);

/// The op codes reduce.wgsl repeats (see [`super::Contract`]).
pub(crate) fn contracts() -> Vec<super::Contract> {
    [
        ("OP_SUM", ROp::Sum),
        ("OP_MEAN", ROp::Mean),
        ("OP_MAX", ROp::Max),
        ("OP_MIN", ROp::Min),
        ("OP_ARGMAX", ROp::ArgMax),
        ("OP_ARGMIN", ROp::ArgMin),
        ("OP_LSE", ROp::LogSumExp),
        ("OP_VAR", ROp::Var),
    ]
    .map(|(name, op)| super::Contract {
        family: "reduce",
        name,
        value: op as u64,
    })
    .to_vec()
}

/// The reduction ops, numbered as `OP_*` in `reduce.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ROp {
    Sum = 0,
    Mean = 1,
    Max = 2,
    Min = 3,
    ArgMax = 4,
    ArgMin = 5,
    LogSumExp = 6,
    Var = 7,
}

impl ROp {
    fn needs_elements(self) -> bool {
        matches!(self, ROp::Max | ROp::Min | ROp::ArgMax | ROp::ArgMin)
    }
    fn out_dtype(self) -> DType {
        match self {
            ROp::ArgMax | ROp::ArgMin => DType::U32,
            _ => DType::F32,
        }
    }
}

const ENTRIES: [&str; 5] = [
    "reduce_rows",
    "reduce_partial_in",
    "reduce_partial_st",
    "reduce_final_in",
    "reduce_final_st",
];

/// The kernel for `entry` and `op`: sum and mean (the hot ops) get pipelines specialized
/// with the `OP` override; the other ops share one that reads the op at run time.
fn kernel(entry: &'static str, op: ROp) -> Kernel {
    let k = Kernel::new("reduce", entry, 1, 1).with_workgroup((WG as u32, 1, 1));
    match op {
        ROp::Sum | ROp::Mean => k.with_constant("OP", op as u32 as f64),
        _ => k,
    }
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    let mut v = Vec::new();
    for e in ENTRIES {
        for op in [ROp::Sum, ROp::Mean, ROp::Max] {
            v.push(kernel(e, op));
        }
    }
    v
}

/// Parameters in the order of `struct P` in `reduce.wgsl`.
fn params(
    len: usize,
    inner: usize,
    n_out: usize,
    chunk: usize,
    op: ROp,
    corr: f32,
    total: usize,
) -> Params {
    Params::new()
        .usize(len)
        .usize(inner)
        .usize(n_out)
        .usize(chunk)
        .u32(op as u32)
        .f32(corr)
        .usize(total)
}

/// Elements per workgroup so that at most 65535 workgroups cover `len`.
fn chunk_for(len: usize, min_chunk: usize) -> usize {
    min_chunk.max(len.div_ceil(MAX_GROUPS_PER_DIM as usize))
}

/// The output shape of a reduction of `shape` along `axis`.
fn reduced_shape(shape: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keepdim {
        s[axis] = 1;
    } else {
        s.remove(axis);
    }
    s
}

impl DeviceTensor {
    /// Reduces the `[outer, len, inner]` view of `self` along `len`, giving `out_shape`
    /// (`outer * inner` elements).
    fn reduce_view(
        &self,
        name: &'static str,
        op: ROp,
        (outer, len, inner): (usize, usize, usize),
        out_shape: &[usize],
        corr: f32,
    ) -> Result<DeviceTensor> {
        self.expect_dtype(name, DType::F32)?;
        if len == 0 && op.needs_elements() {
            return Err(Error::invalid(
                name,
                "cannot reduce an empty axis (no identity element)",
                self.shape(),
            ));
        }
        let dev = self.device();
        let out = DeviceTensor::uninit_for(name, dev, out_shape, op.out_dtype())?;
        let n_out = outer * inner;
        if n_out == 0 {
            return Ok(out);
        }
        let (many, many_len) = if dev.is_cpu() {
            ROWS_MANY_CPU
        } else {
            ROWS_MANY_GPU
        };
        let rows = len <= ROWS_MAX_LEN
            || (n_out >= many && len <= many_len)
            || n_out > MAX_GROUPS_PER_DIM as usize;
        if rows {
            return dev
                .dispatch(
                    &kernel("reduce_rows", op),
                    &[self],
                    &[&out],
                    &params(len, inner, n_out, 0, op, corr, len),
                    grid_1d(n_out, WG as u32)?,
                )
                .map(|_| out);
        }
        // Tree: chunked passes over the input, then over partial states, until one chunk.
        let chunk = chunk_for(len, CHUNK_IN);
        let chunks = len.div_ceil(chunk);
        if chunks == 1 {
            dev.dispatch(
                &kernel("reduce_final_in", op),
                &[self],
                &[&out],
                &params(len, inner, n_out, chunk, op, corr, len),
                (1, n_out as u32, 1),
            )?;
            return Ok(out);
        }
        let mut states = DeviceTensor::uninit_for(name, dev, &[n_out * chunks * 4], DType::U32)?;
        dev.dispatch(
            &kernel("reduce_partial_in", op),
            &[self],
            &[&states],
            &params(len, inner, n_out, chunk, op, corr, len),
            (chunks as u32, n_out as u32, 1),
        )?;
        let mut cur = chunks;
        loop {
            let chunk = chunk_for(cur, CHUNK_ST);
            let next = cur.div_ceil(chunk);
            let p = params(cur, 1, n_out, chunk, op, corr, len);
            if next == 1 {
                dev.dispatch(
                    &kernel("reduce_final_st", op),
                    &[&states],
                    &[&out],
                    &p,
                    (1, n_out as u32, 1),
                )?;
                return Ok(out);
            }
            let more = DeviceTensor::uninit_for(name, dev, &[n_out * next * 4], DType::U32)?;
            dev.dispatch(
                &kernel("reduce_partial_st", op),
                &[&states],
                &[&more],
                &p,
                (next as u32, n_out as u32, 1),
            )?;
            states = more;
            cur = next;
        }
    }

    fn reduce_axis(
        &self,
        name: &'static str,
        op: ROp,
        axis: isize,
        keepdim: bool,
        corr: f32,
    ) -> Result<DeviceTensor> {
        let a = normalize_axis(name, axis, self.shape())?;
        let out_shape = reduced_shape(self.shape(), a, keepdim);
        self.reduce_view(name, op, split_at_axis(self.shape(), a), &out_shape, corr)
    }

    fn reduce_all(&self, name: &'static str, op: ROp, corr: f32) -> Result<DeviceTensor> {
        self.reduce_view(name, op, (1, self.numel(), 1), &[], corr)
    }

    /// Sum along `axis` (negative counts from the end); `keepdim` keeps the axis with size 1.
    /// An empty axis sums to 0. Returns [`Error::AxisOutOfRange`] for a bad axis and
    /// [`Error::DtypeMismatch`] for `u32` tensors.
    pub fn sum_axis(&self, axis: isize, keepdim: bool) -> Result<DeviceTensor> {
        self.reduce_axis("sum_axis", ROp::Sum, axis, keepdim, 0.0)
    }

    /// Mean along `axis`; an empty axis gives NaN (as PyTorch). Errors as
    /// [`DeviceTensor::sum_axis`].
    pub fn mean_axis(&self, axis: isize, keepdim: bool) -> Result<DeviceTensor> {
        self.reduce_axis("mean_axis", ROp::Mean, axis, keepdim, 0.0)
    }

    /// Maximum along `axis` (PyTorch's `amax`), NaN where the slice holds one. Errors as
    /// [`DeviceTensor::sum_axis`], plus [`Error::InvalidArgument`] when the axis is empty.
    pub fn amax_axis(&self, axis: isize, keepdim: bool) -> Result<DeviceTensor> {
        self.reduce_axis("amax_axis", ROp::Max, axis, keepdim, 0.0)
    }

    /// Minimum along `axis` (PyTorch's `amin`). Errors as [`DeviceTensor::amax_axis`].
    pub fn amin_axis(&self, axis: isize, keepdim: bool) -> Result<DeviceTensor> {
        self.reduce_axis("amin_axis", ROp::Min, axis, keepdim, 0.0)
    }

    /// PyTorch's `torch.max(x, dim)`: the maximum along `axis` and its index (u32; the first
    /// on ties, the first NaN when there is one), both with the reduced shape. Errors as
    /// [`DeviceTensor::amax_axis`].
    pub fn max_axis(&self, axis: isize, keepdim: bool) -> Result<(DeviceTensor, DeviceTensor)> {
        self.extremum_with_index("max_axis", ROp::ArgMax, axis, keepdim)
    }

    /// PyTorch's `torch.min(x, dim)`: the minimum along `axis` and its index. Errors as
    /// [`DeviceTensor::amax_axis`].
    pub fn min_axis(&self, axis: isize, keepdim: bool) -> Result<(DeviceTensor, DeviceTensor)> {
        self.extremum_with_index("min_axis", ROp::ArgMin, axis, keepdim)
    }

    /// The value at the arg-extremum `op` along `axis`, and the index.
    fn extremum_with_index(
        &self,
        name: &'static str,
        op: ROp,
        axis: isize,
        keepdim: bool,
    ) -> Result<(DeviceTensor, DeviceTensor)> {
        let idx = self.reduce_axis(name, op, axis, true, 0.0)?;
        let a = normalize_axis(name, axis, self.shape())?;
        let values = self.gather(a as isize, &idx)?;
        let shape = reduced_shape(self.shape(), a, keepdim);
        Ok((values.reshape(&shape)?, idx.reshape(&shape)?))
    }

    /// Index of the maximum along `axis`, as a `u32` tensor; ties give the first index (as
    /// PyTorch). Errors as [`DeviceTensor::amax_axis`].
    pub fn argmax_axis(&self, axis: isize, keepdim: bool) -> Result<DeviceTensor> {
        self.reduce_axis("argmax_axis", ROp::ArgMax, axis, keepdim, 0.0)
    }

    /// Index of the minimum along `axis`, as a `u32` tensor; ties give the first index.
    /// Errors as [`DeviceTensor::amax_axis`].
    pub fn argmin_axis(&self, axis: isize, keepdim: bool) -> Result<DeviceTensor> {
        self.reduce_axis("argmin_axis", ROp::ArgMin, axis, keepdim, 0.0)
    }

    /// `log(sum(exp(x)))` along `axis`, computed stably (the maximum is subtracted first, so
    /// large inputs do not overflow); -inf for an empty axis. Errors as
    /// [`DeviceTensor::sum_axis`].
    pub fn logsumexp_axis(&self, axis: isize, keepdim: bool) -> Result<DeviceTensor> {
        self.reduce_axis("logsumexp_axis", ROp::LogSumExp, axis, keepdim, 0.0)
    }

    /// Variance along `axis`: sum of squared deviations divided by `n - 1` when `unbiased`,
    /// else by `n` (Welford's algorithm, combined pairwise). NaN when the divisor is not
    /// positive (an empty axis, or one element with `unbiased`), as PyTorch. Errors as
    /// [`DeviceTensor::sum_axis`].
    pub fn var_axis(&self, axis: isize, unbiased: bool, keepdim: bool) -> Result<DeviceTensor> {
        let corr = if unbiased { 1.0 } else { 0.0 };
        self.reduce_axis("var_axis", ROp::Var, axis, keepdim, corr)
    }

    /// Sum of every element, as a shape-`[]` tensor (0 for an empty tensor). Returns
    /// [`Error::DtypeMismatch`] for `u32` tensors.
    pub fn sum_all(&self) -> Result<DeviceTensor> {
        self.reduce_all("sum_all", ROp::Sum, 0.0)
    }

    /// Mean of every element, as a shape-`[]` tensor (NaN for an empty tensor). Returns
    /// [`Error::DtypeMismatch`] for `u32` tensors.
    pub fn mean_all(&self) -> Result<DeviceTensor> {
        self.reduce_all("mean_all", ROp::Mean, 0.0)
    }

    /// Largest element, as a shape-`[]` tensor. Returns [`Error::InvalidArgument`] for an
    /// empty tensor and [`Error::DtypeMismatch`] for `u32` tensors.
    pub fn max_all(&self) -> Result<DeviceTensor> {
        self.reduce_all("max_all", ROp::Max, 0.0)
    }

    /// Smallest element, as a shape-`[]` tensor. Errors as [`DeviceTensor::max_all`].
    pub fn min_all(&self) -> Result<DeviceTensor> {
        self.reduce_all("min_all", ROp::Min, 0.0)
    }

    /// Flat (row-major) index of the largest element, as a shape-`[]` `u32` tensor; ties
    /// give the first index. Errors as [`DeviceTensor::max_all`].
    pub fn argmax_all(&self) -> Result<DeviceTensor> {
        self.reduce_all("argmax_all", ROp::ArgMax, 0.0)
    }

    /// Flat index of the smallest element, as a shape-`[]` `u32` tensor; ties give the first
    /// index. Errors as [`DeviceTensor::max_all`].
    pub fn argmin_all(&self) -> Result<DeviceTensor> {
        self.reduce_all("argmin_all", ROp::ArgMin, 0.0)
    }

    /// Stable `log(sum(exp(x)))` over every element, as a shape-`[]` tensor (-inf for an
    /// empty tensor). Returns [`Error::DtypeMismatch`] for `u32` tensors.
    pub fn logsumexp_all(&self) -> Result<DeviceTensor> {
        self.reduce_all("logsumexp_all", ROp::LogSumExp, 0.0)
    }

    /// Variance of every element (divisor `n - 1` when `unbiased`, else `n`), as a
    /// shape-`[]` tensor; NaN when the divisor is not positive. Returns
    /// [`Error::DtypeMismatch`] for `u32` tensors.
    pub fn var_all(&self, unbiased: bool) -> Result<DeviceTensor> {
        let corr = if unbiased { 1.0 } else { 0.0 };
        self.reduce_all("var_all", ROp::Var, corr)
    }

    /// Sum over several `axes` (negative allowed, any order); with `keepdim` they stay as
    /// size-1 dimensions. An empty list returns the tensor unchanged (sharing its storage; unlike PyTorch's
    /// `dim=[]`, which sums everything). Adjacent reduced axes are merged, so the cost is one
    /// reduction per run of reduced axes. Returns [`Error::AxisOutOfRange`] for a bad axis,
    /// [`Error::InvalidArgument`] for a repeated axis and [`Error::DtypeMismatch`] for `u32`
    /// tensors.
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Result<DeviceTensor> {
        let name = "sum_axes";
        self.expect_dtype(name, DType::F32)?;
        let shape = self.shape();
        let mut red = vec![false; shape.len()];
        for &a in axes {
            let n = normalize_axis(name, a, shape)?;
            if red[n] {
                return Err(Error::invalid(
                    name,
                    format!("axis {a} is given more than once in {axes:?}"),
                    shape,
                ));
            }
            red[n] = true;
        }
        let out_shape: Vec<usize> = shape
            .iter()
            .zip(&red)
            .filter_map(|(&d, &r)| match (r, keepdim) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        self.sum_masked(name, &red)?.reshape(&out_shape)
    }

    /// Sums over the dimensions flagged in `red`; the result has `self`'s element order with
    /// those dimensions of size 1 (any shape of that element count; callers reshape).
    fn sum_masked(&self, name: &'static str, red: &[bool]) -> Result<DeviceTensor> {
        // Merge runs of reduced / kept dimensions; size-1 dimensions do not matter.
        let mut groups: Vec<(usize, bool)> = Vec::new();
        for (&d, &r) in self.shape().iter().zip(red) {
            if d == 1 {
                continue;
            }
            match groups.last_mut() {
                Some(last) if last.1 == r => last.0 *= d,
                _ => groups.push((d, r)),
            }
        }
        if !groups.iter().any(|g| g.1) {
            return Ok(self.clone());
        }
        let mut dims: Vec<usize> = groups.iter().map(|g| g.0).collect();
        let mut t = self.reshape(&dims)?;
        // Reduce the largest runs first: the later passes then read less.
        let mut order: Vec<usize> = (0..groups.len()).filter(|&i| groups[i].1).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(groups[i].0));
        for i in order {
            let (outer, len, inner) = split_at_axis(&dims, i);
            dims[i] = 1;
            t = t.reduce_view(name, ROp::Sum, (outer, len, inner), &dims, 0.0)?;
        }
        Ok(t)
    }

    /// Sums `self` down to `shape`, the inverse of broadcasting `shape` to `self.shape()`
    /// (what the backward pass of a broadcasting op needs): leading dimensions are summed
    /// away and dimensions where `shape` has 1 are summed with the 1 kept. Returns the tensor
    /// unchanged (sharing storage) when the shapes are equal. Returns
    /// [`Error::ShapeMismatch`] when `shape` does not broadcast to `self.shape()`, and
    /// [`Error::DtypeMismatch`] for `u32` tensors.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<DeviceTensor> {
        let name = "sum_to_shape";
        let src = self.shape();
        let ok =
            shape.len() <= src.len() && broadcast_shapes(name, shape, src).is_ok_and(|b| b == src);
        if !ok {
            return Err(Error::shapes(name, src, shape));
        }
        self.expect_dtype(name, DType::F32)?;
        if shape == src {
            return Ok(self.clone());
        }
        let off = src.len() - shape.len();
        let red: Vec<bool> = (0..src.len())
            .map(|d| d < off || (shape[d - off] == 1 && src[d] != 1))
            .collect();
        self.sum_masked(name, &red)?.reshape(shape)
    }
}
