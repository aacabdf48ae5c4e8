//! `Linear`: `y = x W^T + b`, PyTorch's `nn.Linear`.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};

use crate::init::Init;
use crate::module::Module;
use crate::var_store::Path;

/// A fully connected layer: `weight [out, in]`, optional `bias [out]`, both initialized
/// uniform in `±1/sqrt(in)` as PyTorch does.
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, when the layer has a bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Creates `weight` and `bias` under `path`. Returns `Err` when a name is taken or a
    /// size is zero.
    pub fn new(path: &Path, in_features: usize, out_features: usize, bias: bool) -> Result<Linear> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::invalid(
                "Linear",
                "in and out features must be positive",
                &[out_features, in_features],
            ));
        }
        let weight = path.var(
            "weight",
            &[out_features, in_features],
            Init::default_weight(),
        )?;
        let bias = bias
            .then(|| path.var("bias", &[out_features], Init::default_bias(in_features)))
            .transpose()?;
        Ok(Linear { weight, bias })
    }
}

impl Module for Linear {
    /// `[..., in]` to `[..., out]`. Returns `Err` when the last dimension is not `in` (or
    /// the weight is not 2-D).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        let w = self.weight.shape();
        if w.len() != 2 || s.is_empty() || s[s.len() - 1] != w[1] {
            return Err(Error::shapes("Linear", &s, &w));
        }
        x.linear(&self.weight, self.bias.as_ref())
    }
}

impl Linear {
    /// `relu(self.forward(x))`, with the bias add and the ReLU fused into the product
    /// ([`Tensor::linear_relu`]). Errors as [`Module::forward`].
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        let w = self.weight.shape();
        if w.len() != 2 || s.is_empty() || s[s.len() - 1] != w[1] {
            return Err(Error::shapes("Linear", &s, &w));
        }
        x.linear_relu(&self.weight, self.bias.as_ref())
    }
}
