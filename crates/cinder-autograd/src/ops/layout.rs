//! Layout ops and their backward rules: reshape, permute/transpose (inverse permutation),
//! narrow/slice (zero padding back), concat (narrowing back), pad (narrowing back), and the
//! no-grad constructors and casts.

use cinder_device::shape::normalize_axis;
use cinder_device::{DType, Device, DeviceTensor, Result};

use crate::tensor::Tensor;

impl Tensor {
    /// The same data with another shape of equal element count (no copy). Errors as
    /// [`DeviceTensor::reshape`].
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let d = self.raw();
        if d.shape() == shape {
            return Ok(self.clone());
        }
        let y = d.reshape(shape)?;
        Ok(Tensor::from_op("reshape", y, &[self], |c| {
            Ok(vec![Some(c.grad.reshape(&c.input(0).shape())?)])
        }))
    }

    /// `[N, d1, d2, ...]` flattened to `[N, d1 * d2 * ...]` (as `nn.Flatten`). Returns
    /// [`cinder_device::Error::AxisOutOfRange`] when `axis` is not below the rank (so for
    /// every rank-0 tensor).
    pub fn flatten_from(&self, axis: usize) -> Result<Tensor> {
        let s = self.shape();
        if axis >= s.len() {
            return Err(cinder_device::Error::AxisOutOfRange {
                op: "flatten_from",
                axis: isize::try_from(axis).unwrap_or(isize::MAX),
                shape: s,
            });
        }
        let mut shape = s[..axis].to_vec();
        shape.push(cinder_device::shape::checked_product(
            "flatten_from",
            &s,
            &s[axis..],
        )?);
        self.reshape(&shape)
    }

    /// A copy in a new buffer (gradient passes unchanged). Returns `Err` when the device
    /// cannot allocate it.
    pub fn deep_clone(&self) -> Result<Tensor> {
        let y = self.raw().deep_clone()?;
        Ok(Tensor::from_op("deep_clone", y, &[self], |c| {
            Ok(vec![Some(c.grad.clone())])
        }))
    }

    /// Dimensions reordered by `dims`. Errors as [`DeviceTensor::permute`].
    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        let y = self.raw().permute(dims)?;
        let mut inv = vec![0; dims.len()];
        for (i, &d) in dims.iter().enumerate() {
            inv[d] = i;
        }
        Ok(Tensor::from_op("permute", y, &[self], move |c| {
            Ok(vec![Some(c.grad.permute(&inv)?)])
        }))
    }

    /// Two dimensions swapped. Errors as [`DeviceTensor::transpose`].
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let y = self.raw().transpose(d0, d1)?;
        Ok(Tensor::from_op("transpose", y, &[self], move |c| {
            Ok(vec![Some(c.grad.transpose(d0, d1)?)])
        }))
    }

    /// The last two dimensions swapped. Errors as [`DeviceTensor::t`].
    pub fn t(&self) -> Result<Tensor> {
        self.transpose(-2, -1)
    }

    /// Elements `start..start + len` along `axis` (a copy); backward pads with zeros.
    /// Errors as [`DeviceTensor::narrow`].
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = self.raw();
        let y = d.narrow(axis, start, len)?;
        let a = normalize_axis("narrow", axis, d.shape())?;
        let dim = d.shape()[a];
        Ok(Tensor::from_op("narrow", y, &[self], move |c| {
            let mut pads = vec![(0, 0); c.grad.rank()];
            pads[a] = (start, dim - start - len);
            Ok(vec![Some(c.grad.pad(&pads, 0.0)?)])
        }))
    }

    /// Elements `start..end` along `axis`. Errors as [`DeviceTensor::slice`].
    pub fn slice(&self, axis: isize, start: usize, end: usize) -> Result<Tensor> {
        if start > end {
            self.raw().slice(axis, start, end)?;
        }
        self.narrow(axis, start, end - start)
    }

    /// Joins tensors along `axis`; backward narrows the gradient back into pieces. Errors
    /// as [`DeviceTensor::concat`].
    pub fn concat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        let datas: Vec<DeviceTensor> = tensors.iter().map(|t| t.raw()).collect();
        let refs: Vec<&DeviceTensor> = datas.iter().collect();
        let y = DeviceTensor::concat(&refs, axis)?;
        let a = normalize_axis("concat", axis, y.shape())?;
        let lens: Vec<usize> = datas.iter().map(|d| d.shape()[a]).collect();
        Ok(Tensor::from_op("concat", y, tensors, move |c| {
            let mut start = 0;
            let mut out = Vec::with_capacity(lens.len());
            for (i, &len) in lens.iter().enumerate() {
                out.push(
                    c.input(i)
                        .requires_grad()
                        .then(|| c.grad.narrow(a as isize, start, len))
                        .transpose()?,
                );
                start += len;
            }
            Ok(out)
        }))
    }

    /// Constant padding (`pads` as [`DeviceTensor::pad`]); backward cuts the padding away.
    /// Errors as [`DeviceTensor::pad`].
    pub fn pad(&self, pads: &[(usize, usize)], value: f32) -> Result<Tensor> {
        let y = self.raw().pad(pads, value)?;
        let pads = pads.to_vec();
        Ok(Tensor::from_op("pad", y, &[self], move |c| {
            let shape = c.input(0).shape();
            let off = shape.len() - pads.len();
            let mut g = c.grad.clone();
            for (i, &(before, _)) in pads.iter().enumerate() {
                let ax = off + i;
                if g.shape()[ax] != shape[ax] {
                    g = g.narrow(ax as isize, before, shape[ax])?;
                }
            }
            Ok(vec![Some(g)])
        }))
    }

    /// `start, start + step, ...` below `end` (no grad). Errors as [`DeviceTensor::arange`].
    pub fn arange(device: &Device, start: f32, end: f32, step: f32) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::arange(
            device, start, end, step,
        )?))
    }

    /// `0..n` as u32 (no grad). Errors as [`DeviceTensor::arange_u32`].
    pub fn arange_u32(device: &Device, n: usize) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::arange_u32(device, n)?))
    }

    /// The `n x m` identity (no grad). Errors as [`DeviceTensor::eye`].
    pub fn eye(device: &Device, n: usize, m: usize) -> Result<Tensor> {
        Ok(Tensor::from_raw(DeviceTensor::eye(device, n, m)?))
    }

    /// A cast to `dtype` (no grad: casts cut the graph). Errors as
    /// [`DeviceTensor::to_dtype`].
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        Ok(Tensor::from_raw(self.raw().to_dtype(dtype)?))
    }
}
