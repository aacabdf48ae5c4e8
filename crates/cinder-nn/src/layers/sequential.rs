//! `Sequential`: modules applied in order.

use cinder_autograd::Tensor;
use cinder_device::Result;

use crate::module::ModuleT;

/// Modules applied one after another, as `nn.Sequential`. It holds any [`ModuleT`] and is
/// one itself: call `forward_t(x, train)` with the mode its members should run in.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn ModuleT>>,
}

impl Sequential {
    /// An empty sequence (the identity).
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Appends a module and returns the sequence (builder style).
    pub fn with<M: ModuleT + 'static>(mut self, m: M) -> Sequential {
        self.layers.push(Box::new(m));
        self
    }

    /// Appends a module in place.
    pub fn push<M: ModuleT + 'static>(&mut self, m: M) {
        self.layers.push(Box::new(m));
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl ModuleT for Sequential {
    /// Each module's `forward_t` in order. Returns the first module's `Err`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = x.clone();
        for l in &self.layers {
            y = l.forward_t(&y, train)?;
        }
        Ok(y)
    }
}
