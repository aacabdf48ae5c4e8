//! Gather, index-select, scatter-add and one-hot with their backward rules: gather and
//! scatter-add are each other's adjoints, as are index-select and its backward.

use cinder_device::Result;
use cinder_device::shape::normalize_axis;

use crate::tensor::Tensor;

impl Tensor {
    /// `torch.gather` along `axis` with u32 `index` (no grad to the index). Errors as
    /// [`cinder_device::DeviceTensor::gather`].
    pub fn gather(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        let idx = index.raw();
        let y = self.raw().gather(axis, &idx)?;
        Ok(Tensor::from_op("gather", y, &[self], move |c| {
            let zeros = c.input(0).zeros_like()?;
            let idx = Tensor::from_raw(idx.clone());
            Ok(vec![Some(zeros.scatter_add(axis, &idx, c.grad)?)])
        }))
    }

    /// `torch.index_select` along `axis` with a 1-D u32 `index`. Errors as
    /// [`cinder_device::DeviceTensor::index_select`].
    pub fn index_select(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        let idx = index.raw();
        let d = self.raw();
        let y = d.index_select(axis, &idx)?;
        let dim = d.shape()[normalize_axis("index_select", axis, d.shape())?];
        Ok(Tensor::from_op("index_select", y, &[self], move |c| {
            let idx = Tensor::from_raw(idx.clone());
            Ok(vec![Some(c.grad.index_select_backward(axis, &idx, dim)?)])
        }))
    }

    /// Backward of [`Tensor::index_select`] as an op (differentiable in `self`, the output
    /// gradient). Errors as [`cinder_device::DeviceTensor::index_select_backward`].
    pub fn index_select_backward(
        &self,
        axis: isize,
        index: &Tensor,
        dim_size: usize,
    ) -> Result<Tensor> {
        let idx = index.raw();
        let y = self.raw().index_select_backward(axis, &idx, dim_size)?;
        Ok(Tensor::from_op(
            "index_select_backward",
            y,
            &[self],
            move |c| {
                let idx = Tensor::from_raw(idx.clone());
                Ok(vec![Some(c.grad.index_select(axis, &idx)?)])
            },
        ))
    }

    /// `torch.scatter_add` (not in place): `self` plus `src` added at `index` along `axis`.
    /// Gradients reach `self` (unchanged) and `src` (gathered). Errors as
    /// [`cinder_device::DeviceTensor::scatter_add`].
    pub fn scatter_add(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        let idx = index.raw();
        let y = self.raw().scatter_add(axis, &idx, &src.raw())?;
        Ok(Tensor::from_op("scatter_add", y, &[self, src], move |c| {
            let idx = Tensor::from_raw(idx.clone());
            let gsrc = c
                .input(1)
                .requires_grad()
                .then(|| c.grad.gather(axis, &idx))
                .transpose()?;
            Ok(vec![Some(c.grad.clone()), gsrc])
        }))
    }

    /// One-hot encoding of u32 labels (f32 0/1, no grad). Errors as
    /// [`cinder_device::DeviceTensor::one_hot`].
    pub fn one_hot(&self, num_classes: usize) -> Result<Tensor> {
        Ok(Tensor::from_raw(self.raw().one_hot(num_classes)?))
    }
}
