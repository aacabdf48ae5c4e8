//! [`Tensor`]: a [`DeviceTensor`] plus, when it requires grad, the graph node that made it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use cinder_device::{DType, Device, DeviceTensor, Element, Error, Result};

use crate::mode::is_grad_enabled;

/// What a backward rule sees: the gradient flowing into the op's output, the op's inputs
/// and the output itself (so rules like sigmoid's can reuse it, differentiably).
pub struct Ctx<'a> {
    /// Gradient of the loss with respect to the output (same shape as the output).
    pub grad: &'a Tensor,
    /// The op's inputs, in the order the op recorded them.
    pub inputs: &'a [Tensor],
    /// The op's output.
    pub output: &'a Tensor,
}

impl Ctx<'_> {
    /// The `i`-th input.
    pub fn input(&self, i: usize) -> &Tensor {
        &self.inputs[i]
    }
}

/// A backward rule: gradients for each input (`None` where an input gets none), computed
/// with `Tensor` ops so that they are recorded when `create_graph` is set.
pub type BackwardFn = dyn Fn(&Ctx) -> Result<Vec<Option<Tensor>>> + Send + Sync;

pub(crate) struct Node {
    pub(crate) op: &'static str,
    pub(crate) inputs: Vec<Tensor>,
    pub(crate) backward: Box<BackwardFn>,
}

pub(crate) struct Inner {
    data: RwLock<DeviceTensor>,
    requires_grad: AtomicBool,
    /// True for tensors made by a recorded op (not leaves).
    has_node: bool,
    pub(crate) node: Mutex<Option<Node>>,
    pub(crate) grad: Mutex<Option<Tensor>>,
}

/// What users hold: an `Arc` of a [`DeviceTensor`] and, when it requires grad, the node of
/// the op that made it (its inputs and backward rule). Cloning is cheap and shares both.
///
/// Every [`DeviceTensor`] op exists on `Tensor` with the same name and arguments and
/// returns `cinder::Result<Tensor>`. An op records a node when grad mode is on (see
/// [`crate::no_grad`]) and one of its inputs requires grad; `loss.backward()` then fills
/// the `.grad()` of every leaf that requires grad.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tensor {
    fn make(data: DeviceTensor, requires_grad: bool, node: Option<Node>) -> Tensor {
        Tensor {
            inner: Arc::new(Inner {
                data: RwLock::new(data),
                requires_grad: AtomicBool::new(requires_grad),
                has_node: node.is_some(),
                node: Mutex::new(node),
                grad: Mutex::new(None),
            }),
        }
    }

    /// A leaf tensor holding the device crate's raw tensor `data`, not requiring grad (the
    /// bridge from `cinder::device` for kernel authors; never fails).
    pub fn from_raw(data: DeviceTensor) -> Tensor {
        Self::make(data, false, None)
    }

    /// A leaf parameter (PyTorch's `nn.Parameter(t)`): a new leaf sharing `data`'s buffer,
    /// cut from any graph, with `requires_grad` set. `data` is a [`Tensor`] or the device
    /// crate's raw tensor. Returns [`Error::DtypeMismatch`] for a `u32` tensor (only floats
    /// have gradients).
    pub fn parameter(data: impl Into<Tensor>) -> Result<Tensor> {
        let data = data.into().raw();
        data.expect_dtype("parameter", DType::F32)?;
        Ok(Self::make(data, true, None))
    }

    /// Records an op: `data` is its output, `inputs` its inputs, `backward` its rule. When
    /// grad mode is off or no input requires grad, returns a plain tensor and drops the
    /// rule. This is how every op in this crate, and ops defined outside it, record. With
    /// anomaly detection on ([`crate::set_detect_anomaly`]), `data` is checked for NaN and
    /// infinity under the name `op`.
    pub fn from_op<F>(
        op: &'static str,
        data: DeviceTensor,
        inputs: &[&Tensor],
        backward: F,
    ) -> Tensor
    where
        F: Fn(&Ctx) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    {
        crate::mode::check_anomaly(op, &data);
        if !needs_graph(inputs) {
            return Self::from_raw(data);
        }
        let node = Node {
            op,
            inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            backward: Box::new(backward),
        };
        Self::make(data, true, Some(node))
    }

    /// Uploads `data` with `shape` as a leaf (no grad). Errors as
    /// [`DeviceTensor::from_slice`].
    pub fn from_slice<T: Element>(device: &Device, data: &[T], shape: &[usize]) -> Result<Tensor> {
        Ok(Self::from_raw(DeviceTensor::from_slice(
            device, data, shape,
        )?))
    }

    /// A shape-`[]` leaf holding `v`. Returns `Err` when the device cannot allocate it.
    pub fn scalar(device: &Device, v: f32) -> Result<Tensor> {
        Ok(Self::from_raw(DeviceTensor::scalar(device, v)?))
    }

    /// The tensor's current data as the device crate's raw tensor (a cheap handle sharing
    /// the buffer, with no graph: ops on it are not recorded). For kernel authors; user code
    /// works on the `Tensor` itself. Never fails.
    pub fn raw(&self) -> DeviceTensor {
        self.inner
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces a leaf's data with `data`'s (shared, not copied), as `p.data = new` in
    /// PyTorch. The graph is not told: a graph recorded before still refers to the tensor
    /// and its backward will see the new data, so update parameters between steps, not
    /// inside one. Returns `Err` when the shape or dtype differs, or the tensor is not a
    /// leaf.
    pub fn set_data(&self, data: &Tensor) -> Result<()> {
        self.set_raw(data.raw())
    }

    /// [`Tensor::set_data`] from the device crate's raw tensor (for kernel authors); the same
    /// errors.
    pub fn set_raw(&self, data: DeviceTensor) -> Result<()> {
        if self.inner.has_node {
            return Err(Error::invalid(
                "set_data",
                "only a leaf tensor's data can be replaced",
                self.shape().as_slice(),
            ));
        }
        let mut d = self.inner.data.write().unwrap_or_else(|e| e.into_inner());
        if d.shape() != data.shape() {
            return Err(Error::shapes("set_data", d.shape(), data.shape()));
        }
        data.expect_dtype("set_data", d.dtype())?;
        *d = data;
        Ok(())
    }

    /// The shape (a copy).
    pub fn shape(&self) -> Vec<usize> {
        self.raw().shape().to_vec()
    }
    /// Alias of [`Tensor::shape`].
    pub fn dims(&self) -> Vec<usize> {
        self.shape()
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.raw().rank()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.raw().numel()
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.raw().dtype()
    }
    /// The device the data lives on.
    pub fn device(&self) -> Device {
        self.raw().device().clone()
    }

    /// Reads the data back to the host (submits pending work and waits). Returns
    /// [`Error::DtypeMismatch`] when `T` is not the tensor's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.raw().to_vec()
    }
    /// Reads a one-element tensor as an `f32`. Returns `Err` for other sizes or dtypes.
    pub fn to_scalar(&self) -> Result<f32> {
        self.raw().to_scalar()
    }
    /// Alias of [`Tensor::to_scalar`], as PyTorch's `item()`; the same errors.
    pub fn item(&self) -> Result<f32> {
        self.to_scalar()
    }

    /// True when gradients flow to or through this tensor.
    pub fn requires_grad(&self) -> bool {
        self.inner.requires_grad.load(Ordering::Relaxed)
    }

    /// Sets whether a leaf requires grad and returns it (as `requires_grad_()`). Returns
    /// `Err` when asked to switch it off on a non-leaf (use [`Tensor::detach`]) or on for a
    /// `u32` tensor.
    pub fn requires_grad_(self, requires_grad: bool) -> Result<Tensor> {
        if self.inner.has_node && !requires_grad {
            return Err(Error::invalid(
                "requires_grad_",
                "a non-leaf tensor cannot stop requiring grad; use detach()",
                &self.shape(),
            ));
        }
        if requires_grad {
            self.raw().expect_dtype("requires_grad_", DType::F32)?;
        }
        self.inner
            .requires_grad
            .store(requires_grad, Ordering::Relaxed);
        Ok(self)
    }

    /// True for a tensor not made by a recorded op (inputs, parameters, constants).
    pub fn is_leaf(&self) -> bool {
        !self.inner.has_node
    }

    /// The name of the op that made this tensor, `None` for leaves (and after the graph was
    /// freed by a backward pass).
    pub fn op_name(&self) -> Option<&'static str> {
        lock(&self.inner.node).as_ref().map(|n| n.op)
    }

    /// A new leaf sharing this tensor's data, cut from the graph (no grad).
    pub fn detach(&self) -> Tensor {
        Self::from_raw(self.raw())
    }

    /// The gradient accumulated into this leaf by backward passes, if any.
    pub fn grad(&self) -> Option<Tensor> {
        lock(&self.inner.grad).clone()
    }

    /// Clears the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        *lock(&self.inner.grad) = None;
    }

    /// Replaces the accumulated gradient (for optimizers and clipping).
    pub fn set_grad(&self, grad: Option<Tensor>) {
        *lock(&self.inner.grad) = grad;
    }

    /// True when both handles are the same tensor.
    pub fn same(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }
}

/// True when an op on `inputs` must record a node.
pub(crate) fn needs_graph(inputs: &[&Tensor]) -> bool {
    is_grad_enabled() && inputs.iter().any(|t| t.requires_grad())
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.raw();
        write!(f, "Tensor({:?}, {:?}", d.shape(), d.dtype())?;
        if let Some(op) = self.op_name() {
            write!(f, ", op={op}")?;
        } else if self.requires_grad() {
            write!(f, ", requires_grad")?;
        }
        write!(f, ")")
    }
}

impl From<DeviceTensor> for Tensor {
    fn from(d: DeviceTensor) -> Tensor {
        Tensor::from_raw(d)
    }
}
