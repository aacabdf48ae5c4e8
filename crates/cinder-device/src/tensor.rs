//! `DeviceTensor`: a shaped, typed view of a pooled GPU buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::shape::{checked_numel, numel};

/// Element type of a tensor: `F32` for data, `U32` for indices and labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer.
    U32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        4
    }
}

/// Host element types a tensor can be built from or read into.
pub trait Element: bytemuck::Pod + Copy + Send + Sync + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for u32 {
    const DTYPE: DType = DType::U32;
}

/// A buffer owned by one or more tensors; returned to the device's pool on drop.
pub(crate) struct Storage {
    device: Device,
    buffer: Option<wgpu::Buffer>,
    class: u64,
    /// The device's number for the command buffer that last wrote this buffer (0: an
    /// upload, or nothing yet), so a readback of data whose commands the device rejected
    /// is an error rather than stale contents.
    producer: AtomicU64,
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.device.recycle(b, self.class);
        }
    }
}

/// An n-dimensional array in GPU memory: contiguous, row-major, `f32` or `u32`.
///
/// Cloning is cheap and shares the buffer; ops never modify their inputs (except the
/// explicitly in-place ones) and return new tensors. Every op returns `cinder::Result`:
/// bad shapes, dtypes or axes give `Err` naming the op, never a panic.
#[derive(Clone)]
pub struct DeviceTensor {
    storage: Arc<Storage>,
    shape: Vec<usize>,
    dtype: DType,
}

impl DeviceTensor {
    /// A tensor with unspecified contents (a recycled buffer), for ops to write into.
    /// Returns [`Error::TooLarge`] when it exceeds the device's binding limit or its shape is
    /// not valid (its size overflows, or its non-zero dimensions multiply past 2^32 - 1
    /// elements: see [`crate::shape::checked_numel`]).
    pub fn uninit(device: &Device, shape: &[usize], dtype: DType) -> Result<DeviceTensor> {
        Self::uninit_for("uninit", device, shape, dtype)
    }

    pub(crate) fn uninit_for(
        op: &'static str,
        device: &Device,
        shape: &[usize],
        dtype: DType,
    ) -> Result<DeviceTensor> {
        // A valid shape (its element count, dimensions and strides fit 32 bits) is checked
        // before any size is computed from it, so no size wraps.
        let n = checked_numel(op, shape)?;
        let bytes = n as u64 * dtype.size() as u64;
        let (buffer, class) = device.alloc(op, shape, bytes.max(4))?;
        Ok(DeviceTensor {
            storage: Arc::new(Storage {
                device: device.clone(),
                buffer: Some(buffer),
                class,
                producer: AtomicU64::new(0),
            }),
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// Uploads `data` as a tensor of `shape`. Returns [`Error::ShapeMismatch`] when the
    /// lengths disagree and [`Error::TooLarge`] past the binding limit or for a shape whose
    /// size overflows.
    pub fn from_slice<T: Element>(
        device: &Device,
        data: &[T],
        shape: &[usize],
    ) -> Result<DeviceTensor> {
        if checked_numel("from_slice", shape)? != data.len() {
            return Err(Error::shapes("from_slice", &[data.len()], shape));
        }
        let t = Self::uninit_for("from_slice", device, shape, T::DTYPE)?;
        device.upload_bytes(&t, bytemuck::cast_slice(data));
        Ok(t)
    }

    /// A scalar (shape `[]`) tensor holding `v`.
    pub fn scalar(device: &Device, v: f32) -> Result<DeviceTensor> {
        Self::from_slice(device, &[v], &[])
    }

    /// Overwrites this tensor's contents with `data` (same length), in queue order with the
    /// ops recorded before. Returns [`Error::ShapeMismatch`] or [`Error::DtypeMismatch`].
    pub fn write<T: Element>(&self, data: &[T]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::shapes("write", &[data.len()], &self.shape));
        }
        self.expect_dtype("write", T::DTYPE)?;
        self.device().upload_bytes(self, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Reads the tensor back to the host (submits pending work and waits). Returns
    /// [`Error::DtypeMismatch`] when `T` is not the tensor's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.expect_dtype("to_vec", T::DTYPE)?;
        let bytes = self
            .device()
            .read_bytes(self.buffer(), self.byte_len(), self.producer())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads a one-element tensor as an `f32`. Returns `Err` for other sizes or dtypes.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "to_scalar",
                format!("a tensor of {} elements is not a scalar", self.numel()),
                &self.shape,
            ));
        }
        Ok(self.to_vec::<f32>()?[0])
    }

    /// The same data with another shape of equal element count (free: no copy). Returns
    /// [`Error::ShapeMismatch`] when the counts differ and [`Error::TooLarge`] for a shape
    /// whose size overflows (or is not a valid shape, see [`crate::shape::checked_numel`]).
    pub fn reshape(&self, shape: &[usize]) -> Result<DeviceTensor> {
        if checked_numel("reshape", shape)? != self.numel() {
            return Err(Error::shapes("reshape", &self.shape, shape));
        }
        Ok(DeviceTensor {
            storage: self.storage.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// A copy of this tensor in a new buffer.
    pub fn deep_clone(&self) -> Result<DeviceTensor> {
        let out = Self::uninit_for("deep_clone", self.device(), &self.shape, self.dtype)?;
        self.device().copy_buffer(self, &out)?;
        Ok(out)
    }

    /// The device the tensor lives on.
    pub fn device(&self) -> &Device {
        &self.storage.device
    }
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Alias of [`DeviceTensor::shape`].
    pub fn dims(&self) -> &[usize] {
        &self.shape
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Size of the data in bytes.
    pub fn byte_len(&self) -> u64 {
        self.numel() as u64 * self.dtype.size() as u64
    }
    /// The underlying wgpu buffer (may be larger than the data: pooled size class).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.storage
            .buffer
            .as_ref()
            .expect("storage holds its buffer until dropped")
    }
    /// The number of the command buffer that last wrote this tensor's buffer (0: upload).
    pub(crate) fn producer(&self) -> u64 {
        self.storage.producer.load(Ordering::Acquire)
    }

    /// Records that command buffer `seq` writes this tensor's buffer.
    pub(crate) fn set_producer(&self, seq: u64) {
        self.storage.producer.store(seq, Ordering::Release);
    }

    /// True when both tensors share one buffer.
    pub fn same_storage(&self, other: &DeviceTensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// `Ok` when the dtype is `want`, else [`Error::DtypeMismatch`] naming `op`.
    pub fn expect_dtype(&self, op: &'static str, want: DType) -> Result<()> {
        if self.dtype != want {
            return Err(Error::DtypeMismatch {
                op,
                expected: want,
                got: self.dtype,
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for DeviceTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceTensor({:?}, {:?})", self.shape, self.dtype)
    }
}
