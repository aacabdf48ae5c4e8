//! A multilayer perceptron with configurable widths, activation and dropout.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::{Dropout, Linear, ModuleT, Path};

/// The hidden layers' activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// `max(x, 0)`.
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// GELU (erf form).
    Gelu,
    /// Logistic sigmoid.
    Sigmoid,
}

impl Activation {
    /// Applies the activation. Returns `Err` for `u32` input.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => x.gelu(),
            Activation::Sigmoid => x.sigmoid(),
        }
    }
}

/// `Linear -> activation -> dropout` repeated, then a final `Linear` (no activation):
/// widths `[784, 256, 10]` make `fc0: 784 -> 256` and `fc1: 256 -> 10`. Inputs of any
/// shape `[N, ...]` are flattened.
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
    dropout: Option<Dropout>,
}

impl Mlp {
    /// Creates `fc0 .. fc{n-2}` under `path`. Returns `Err` for fewer than two widths, a
    /// zero width, or a dropout outside `[0, 1]`.
    pub fn new(
        path: &Path,
        widths: &[usize],
        activation: Activation,
        dropout: f32,
        seed: u64,
    ) -> Result<Mlp> {
        if widths.len() < 2 {
            return Err(Error::invalid(
                "Mlp",
                "needs at least input and output widths",
                widths,
            ));
        }
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::new(&path.pp(&format!("fc{i}")), w[0], w[1], true))
            .collect::<Result<Vec<_>>>()?;
        let dropout = (dropout > 0.0)
            .then(|| Dropout::new(dropout, seed))
            .transpose()?;
        Ok(Mlp {
            layers,
            activation,
            dropout,
        })
    }
}

impl ModuleT for Mlp {
    /// `[N, ...]` to `[N, widths.last()]` logits. Returns `Err` when the flattened input
    /// width is not `widths[0]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.flatten_from(1)?;
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            if i < last && self.activation == Activation::Relu {
                // The bias add and the ReLU run inside the product's kernel.
                h = l.forward_relu(&h)?;
            } else {
                h = l.forward_t(&h, train)?;
            }
            if i < last {
                if self.activation != Activation::Relu {
                    h = self.activation.apply(&h)?;
                }
                if let Some(d) = &self.dropout {
                    h = d.forward_t(&h, train)?;
                }
            }
        }
        Ok(h)
    }
}
