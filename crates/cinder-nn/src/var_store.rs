//! The path-scoped parameter store: every parameter and buffer of a model, under a
//! PyTorch-style dotted name (`encoder.conv1.weight`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use cinder_autograd::Tensor;
use cinder_device::{Device, Error, Result};

use crate::checkpoint::FileDType;
use crate::init::Init;

#[derive(Default)]
struct Vars {
    /// Trainable parameters in creation order.
    params: Vec<(String, Tensor)>,
    /// Non-trainable state (BatchNorm running statistics) in creation order.
    buffers: Vec<(String, Tensor)>,
    /// Variables saved in another dtype than their own (`num_batches_tracked` as I64).
    file_dtypes: BTreeMap<String, FileDType>,
    /// Philox offsets handed out so far (each variable gets its own stream).
    draws: u64,
}

/// Holds every parameter and buffer of a model by name. Cheap to clone (shared). Modules
/// are built from a [`Path`] (`vs.root().pp("encoder").pp("conv1")`), which names what
/// they create.
#[derive(Clone)]
pub struct VarStore {
    device: Device,
    seed: u64,
    vars: Arc<Mutex<Vars>>,
}

fn lock(m: &Mutex<Vars>) -> MutexGuard<'_, Vars> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl VarStore {
    /// An empty store on `device`; random initializers draw from `seed`.
    pub fn new(device: &Device, seed: u64) -> VarStore {
        VarStore {
            device: device.clone(),
            seed,
            vars: Arc::new(Mutex::new(Vars::default())),
        }
    }

    /// The root path (no prefix).
    pub fn root(&self) -> Path {
        Path {
            store: self.clone(),
            prefix: String::new(),
        }
    }

    /// Shorthand for `root().pp(name)`.
    pub fn pp(&self, name: &str) -> Path {
        self.root().pp(name)
    }

    /// The device the variables live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every trainable parameter with its name, in creation order.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        lock(&self.vars).params.clone()
    }

    /// Every trainable parameter, in creation order (what an optimizer takes).
    pub fn parameters(&self) -> Vec<Tensor> {
        lock(&self.vars)
            .params
            .iter()
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Every buffer (non-trainable state) with its name, in creation order.
    pub fn named_buffers(&self) -> Vec<(String, Tensor)> {
        lock(&self.vars).buffers.clone()
    }

    /// Parameters then buffers, by name: what a checkpoint holds (PyTorch's `state_dict`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let v = lock(&self.vars);
        v.params.iter().chain(&v.buffers).cloned().collect()
    }

    /// The variable (parameter or buffer) called `name`, if any.
    pub fn get(&self, name: &str) -> Option<Tensor> {
        let v = lock(&self.vars);
        v.params
            .iter()
            .chain(&v.buffers)
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    }

    /// The dtype the variable `name` is written as by [`VarStore::save`]: its own (F32 or
    /// U32) unless it was registered with [`Path::buffer_as`]. `None` when the store has no
    /// variable of that name.
    pub fn file_dtype(&self, name: &str) -> Option<FileDType> {
        let v = lock(&self.vars);
        if let Some(d) = v.file_dtypes.get(name) {
            return Some(*d);
        }
        v.params
            .iter()
            .chain(&v.buffers)
            .find(|(n, _)| n == name)
            .map(|(_, t)| FileDType::of(t.dtype()))
    }

    /// The variables saved in another dtype than their own, by name (what
    /// [`crate::checkpoint::save_as`] takes to write the store as [`VarStore::save`] does).
    pub fn file_dtypes(&self) -> BTreeMap<String, FileDType> {
        lock(&self.vars).file_dtypes.clone()
    }

    /// Total number of trainable scalars.
    pub fn num_parameters(&self) -> usize {
        lock(&self.vars).params.iter().map(|(_, t)| t.numel()).sum()
    }

    /// Clears the gradient of every parameter.
    pub fn zero_grad(&self) {
        for (_, p) in &lock(&self.vars).params {
            p.zero_grad();
        }
    }

    fn register(
        &self,
        name: String,
        t: Tensor,
        buffer: bool,
        file_dtype: Option<FileDType>,
    ) -> Result<Tensor> {
        let mut v = lock(&self.vars);
        if v.params.iter().chain(&v.buffers).any(|(n, _)| *n == name) {
            return Err(Error::invalid(
                "VarStore",
                format!("a variable named `{name}` already exists"),
                &t.shape(),
            ));
        }
        if let Some(d) = file_dtype {
            v.file_dtypes.insert(name.clone(), d);
        }
        if buffer {
            v.buffers.push((name, t.clone()));
        } else {
            v.params.push((name, t.clone()));
        }
        Ok(t)
    }

    fn next_offset(&self) -> u64 {
        let mut v = lock(&self.vars);
        v.draws += 1;
        // Each variable owns a disjoint stream of 2^40 Philox counters.
        v.draws << 40
    }
}

/// A position in a [`VarStore`]: a dotted prefix. `pp` goes one level down.
#[derive(Clone)]
pub struct Path {
    store: VarStore,
    prefix: String,
}

impl Path {
    /// The sub-path `prefix.name`.
    pub fn pp(&self, name: &str) -> Path {
        Path {
            store: self.store.clone(),
            prefix: self.name(name),
        }
    }

    /// The full name of a variable `leaf` under this path.
    pub fn name(&self, leaf: &str) -> String {
        if self.prefix.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.prefix)
        }
    }

    /// The store.
    pub fn store(&self) -> &VarStore {
        &self.store
    }

    /// The device of the store.
    pub fn device(&self) -> &Device {
        &self.store.device
    }

    /// Creates a trainable parameter `leaf` of `shape` filled by `init`. Returns `Err` when
    /// the name is taken or the initializer cannot fill the shape.
    pub fn var(&self, leaf: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let offset = self.store.next_offset();
        let data = init.tensor(&self.store.device, shape, self.store.seed, offset)?;
        self.store
            .register(self.name(leaf), Tensor::parameter(data.raw())?, false, None)
    }

    /// Registers `data` as a trainable parameter `leaf` (weights computed elsewhere): a new
    /// leaf sharing `data`'s buffer, cut from any graph it was in. Returns `Err` when the
    /// name is taken or the data is not f32.
    pub fn var_from(&self, leaf: &str, data: Tensor) -> Result<Tensor> {
        self.store
            .register(self.name(leaf), Tensor::parameter(data.raw())?, false, None)
    }

    /// Creates a non-trainable buffer `leaf` holding `data` (saved in checkpoints, never
    /// given to optimizers). Returns `Err` when the name is taken.
    pub fn buffer(&self, leaf: &str, data: Tensor) -> Result<Tensor> {
        self.store
            .register(self.name(leaf), data.detach(), true, None)
    }

    /// Creates a buffer as [`Path::buffer`] that checkpoints write as `file_dtype`: a `u32`
    /// counter saved as PyTorch's `int64` (`FileDType::I64`), as BatchNorm's
    /// `num_batches_tracked`. Loading converts it back (I64 is read as u32). Returns `Err`
    /// when the name is taken or `data`'s dtype cannot be written as `file_dtype` (only
    /// its own dtype and U32 as I64 are allowed).
    pub fn buffer_as(&self, leaf: &str, data: Tensor, file_dtype: FileDType) -> Result<Tensor> {
        let name = self.name(leaf);
        crate::checkpoint::check_file_dtype("Path::buffer_as", &name, data.dtype(), file_dtype)?;
        let keep = (file_dtype != FileDType::of(data.dtype())).then_some(file_dtype);
        self.store.register(name, data.detach(), true, keep)
    }
}
