//! `Embedding`: a lookup table of vectors, PyTorch's `nn.Embedding`.

use cinder_autograd::Tensor;
use cinder_device::{DType, Error, Result};

use crate::init::Init;
use crate::module::Module;
use crate::var_store::Path;

/// `weight [num_embeddings, dim]`, initialized N(0, 1) as PyTorch does.
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// Creates the table under `path`. Returns `Err` for zero sizes or a taken name.
    pub fn new(path: &Path, num: usize, dim: usize) -> Result<Embedding> {
        if num == 0 || dim == 0 {
            return Err(Error::invalid("Embedding", "zero size", &[num, dim]));
        }
        let weight = path.var(
            "weight",
            &[num, dim],
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
        )?;
        Ok(Embedding { weight })
    }
}

impl Module for Embedding {
    /// u32 indices of any shape to `[..., dim]`. Returns `Err` for f32 input or a weight
    /// that is not 2-D; an index
    /// past the table gives [`cinder_device::Error::IndexOutOfRange`] at the next readback
    /// (PyTorch raises), checked on the device without a readback here.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        ids.raw().expect_dtype("Embedding", DType::U32)?;
        let s = ids.shape();
        let ws = self.weight.shape();
        let [_, dim] = ws[..] else {
            return Err(Error::invalid(
                "Embedding",
                "weight must be [num, dim]",
                &ws,
            ));
        };
        let flat = ids.reshape(&[ids.numel()])?;
        let mut out = s.clone();
        out.push(dim);
        self.weight.index_select(0, &flat)?.reshape(&out)
    }
}
