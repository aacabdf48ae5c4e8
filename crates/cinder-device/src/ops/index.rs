//! Index ops: gather, index_select (and its backward), scatter_add, one_hot. Kernels in
//! `shaders/index.wgsl`. Indices are u32 tensors.
//!
//! An out-of-range index is an error, as in PyTorch, but a kernel cannot return one and no
//! op reads back, so the kernel sets the device's error word (and reads 0 or drops the
//! contribution meanwhile) and the next readback or [`crate::Device::sync`] returns
//! [`crate::Error::IndexOutOfRange`] naming the op and the largest bad index.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Params, grid_elems};
use crate::shape::{normalize_axis, split_at_axis};
use crate::tensor::{DType, DeviceTensor};

fn k(entry: &'static str, reads: u32) -> Kernel {
    Kernel::new("index", entry, reads, 1).with_error_word()
}

/// Every kernel specialization of this family.
pub fn kernels() -> Vec<Kernel> {
    vec![
        k("gather", 2),
        k("index_select", 2),
        k("scatter_add", 3),
        k("index_select_backward", 2),
        k("one_hot", 1),
    ]
}

fn params(
    n: usize,
    outer: usize,
    len_in: usize,
    len_idx: usize,
    inner: usize,
    classes: usize,
) -> Params {
    Params::new()
        .usize(n)
        .usize(outer)
        .usize(len_in)
        .usize(len_idx)
        .usize(inner)
        .usize(classes)
        .u32(crate::checks::error_slot())
}

impl DeviceTensor {
    /// `torch.gather`: `out[..., j, ...] = self[..., index[..., j, ...], ...]` along `axis`.
    /// `index` (u32) must have `self`'s shape except along `axis`; the output has the
    /// index's shape. Returns `Err` on a dtype, rank or shape mismatch or a bad axis; an
    /// index past the axis gives [`crate::Error::IndexOutOfRange`] at the next readback.
    pub fn gather(&self, axis: isize, index: &DeviceTensor) -> Result<DeviceTensor> {
        let op = "gather";
        index.expect_dtype(op, DType::U32)?;
        let a = normalize_axis(op, axis, self.shape())?;
        let ok = index.rank() == self.rank()
            && index
                .shape()
                .iter()
                .zip(self.shape())
                .enumerate()
                .all(|(d, (x, y))| d == a || x == y);
        if !ok {
            return Err(Error::shapes(op, self.shape(), index.shape()));
        }
        let (outer, len_in, inner) = split_at_axis(self.shape(), a);
        let len_idx = index.shape()[a];
        let out = DeviceTensor::uninit_for(op, self.device(), index.shape(), self.dtype())?;
        let n = out.numel();
        let p = params(n, outer, len_in, len_idx, inner.max(1), 0);
        self.device()
            .dispatch(&k("gather", 2), &[self, index], &[&out], &p, grid_elems(n)?)?;
        Ok(out)
    }

    /// `torch.index_select`: the slices `index[j]` (u32, 1-D) of `self` along `axis`.
    /// Returns `Err` when the index is not 1-D u32 or the axis is out of range; an index
    /// past the axis gives [`crate::Error::IndexOutOfRange`] at the next readback.
    pub fn index_select(&self, axis: isize, index: &DeviceTensor) -> Result<DeviceTensor> {
        let op = "index_select";
        index.expect_dtype(op, DType::U32)?;
        let a = normalize_axis(op, axis, self.shape())?;
        if index.rank() != 1 {
            return Err(Error::shapes(op, self.shape(), index.shape()));
        }
        let (outer, len_in, inner) = split_at_axis(self.shape(), a);
        let mut out_shape = self.shape().to_vec();
        out_shape[a] = index.numel();
        let out = DeviceTensor::uninit_for(op, self.device(), &out_shape, self.dtype())?;
        let n = out.numel();
        let p = params(n, outer, len_in, index.numel(), inner.max(1), 0);
        self.device().dispatch(
            &k("index_select", 2),
            &[self, index],
            &[&out],
            &p,
            grid_elems(n)?,
        )?;
        Ok(out)
    }

    /// Backward of [`DeviceTensor::index_select`]: with `self` the output gradient, sums
    /// the rows that `index` selected back into a tensor whose `axis` has `dim_size` entries.
    /// Returns `Err` on dtype/shape mismatch; an index past `dim_size` gives
    /// [`crate::Error::IndexOutOfRange`] at the next readback.
    pub fn index_select_backward(
        &self,
        axis: isize,
        index: &DeviceTensor,
        dim_size: usize,
    ) -> Result<DeviceTensor> {
        let op = "index_select_backward";
        self.expect_dtype(op, DType::F32)?;
        index.expect_dtype(op, DType::U32)?;
        let a = normalize_axis(op, axis, self.shape())?;
        if index.rank() != 1 || index.numel() != self.shape()[a] {
            return Err(Error::shapes(op, self.shape(), index.shape()));
        }
        let (outer, len_idx, inner) = split_at_axis(self.shape(), a);
        let mut out_shape = self.shape().to_vec();
        out_shape[a] = dim_size;
        let out = DeviceTensor::uninit_for(op, self.device(), &out_shape, DType::F32)?;
        let n = out.numel();
        let p = params(n, outer, dim_size, len_idx, inner.max(1), 0);
        self.device().dispatch(
            &k("index_select_backward", 2),
            &[self, index],
            &[&out],
            &p,
            grid_elems(n)?,
        )?;
        Ok(out)
    }

    /// `torch.scatter_add` (not in place): a copy of `self` where `src[..., j, ...]` is added
    /// at `[..., index[..., j, ...], ...]` along `axis`. `index` (u32) and `src` share a shape
    /// equal to `self`'s except along `axis`. Returns `Err` on dtype or shape mismatch; an
    /// index past the axis gives [`crate::Error::IndexOutOfRange`] at the next readback.
    pub fn scatter_add(
        &self,
        axis: isize,
        index: &DeviceTensor,
        src: &DeviceTensor,
    ) -> Result<DeviceTensor> {
        let op = "scatter_add";
        self.expect_dtype(op, DType::F32)?;
        src.expect_dtype(op, DType::F32)?;
        index.expect_dtype(op, DType::U32)?;
        let a = normalize_axis(op, axis, self.shape())?;
        let ok = index.shape() == src.shape()
            && index.rank() == self.rank()
            && index
                .shape()
                .iter()
                .zip(self.shape())
                .enumerate()
                .all(|(d, (x, y))| d == a || x == y);
        if !ok {
            return Err(Error::shapes(op, self.shape(), index.shape()));
        }
        let (outer, len_in, inner) = split_at_axis(self.shape(), a);
        let out = DeviceTensor::uninit_for(op, self.device(), self.shape(), DType::F32)?;
        let n = out.numel();
        let p = params(n, outer, len_in, index.shape()[a], inner.max(1), 0);
        self.device().dispatch(
            &k("scatter_add", 3),
            &[self, index, src],
            &[&out],
            &p,
            grid_elems(n)?,
        )?;
        Ok(out)
    }

    /// One-hot encoding of u32 labels: shape `[..., num_classes]`, f32 0/1. A label
    /// `>= num_classes` gives [`crate::Error::IndexOutOfRange`] at the next readback (and an
    /// all-zero row meanwhile). Returns `Err` for f32 input or zero classes.
    pub fn one_hot(&self, num_classes: usize) -> Result<DeviceTensor> {
        let op = "one_hot";
        self.expect_dtype(op, DType::U32)?;
        if num_classes == 0 {
            return Err(Error::invalid(
                op,
                "num_classes must be positive",
                self.shape(),
            ));
        }
        let mut out_shape = self.shape().to_vec();
        out_shape.push(num_classes);
        let out = DeviceTensor::uninit_for(op, self.device(), &out_shape, DType::F32)?;
        let n = out.numel();
        let p = params(n, 1, 1, 1, 1, num_classes);
        self.device()
            .dispatch(&k("one_hot", 1), &[self], &[&out], &p, grid_elems(n)?)?;
        Ok(out)
    }
}
