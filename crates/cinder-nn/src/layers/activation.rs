//! Activations as modules (`nn.ReLU`, `nn.LeakyReLU`, ...) and `Flatten`.

use cinder_autograd::Tensor;
use cinder_device::Result;

use crate::module::Module;

/// `nn.ReLU`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Relu;
impl Module for Relu {
    /// `max(x, 0)`. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.relu()
    }
}

/// `nn.LeakyReLU(negative_slope)` (PyTorch's default slope is 0.01).
#[derive(Clone, Copy, Debug)]
pub struct LeakyRelu(pub f32);
impl Default for LeakyRelu {
    fn default() -> Self {
        LeakyRelu(0.01)
    }
}
impl Module for LeakyRelu {
    /// `x > 0 ? x : slope x`. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.leaky_relu(self.0)
    }
}

/// `nn.ELU(alpha)` (default 1).
#[derive(Clone, Copy, Debug)]
pub struct Elu(pub f32);
impl Default for Elu {
    fn default() -> Self {
        Elu(1.0)
    }
}
impl Module for Elu {
    /// `x > 0 ? x : alpha (e^x - 1)`. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.elu(self.0)
    }
}

/// `nn.GELU()` (exact erf form).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gelu;
impl Module for Gelu {
    /// GELU. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.gelu()
    }
}

/// `nn.Sigmoid()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sigmoid;
impl Module for Sigmoid {
    /// Logistic sigmoid. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.sigmoid()
    }
}

/// `nn.Tanh()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tanh;
impl Module for Tanh {
    /// Hyperbolic tangent. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.tanh()
    }
}

/// `nn.Softplus(beta)`: `log(1 + e^(beta x)) / beta` (default beta 1). PyTorch's linear
/// `threshold` shortcut is not needed: the kernel is stable for large inputs.
#[derive(Clone, Copy, Debug)]
pub struct Softplus(pub f32);
impl Default for Softplus {
    fn default() -> Self {
        Softplus(1.0)
    }
}
impl Module for Softplus {
    /// Softplus. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.0 == 1.0 {
            x.softplus()
        } else {
            x.mul_scalar(self.0)?.softplus()?.mul_scalar(1.0 / self.0)
        }
    }
}

/// `nn.Flatten()`: `[N, d1, d2, ...]` to `[N, d1 * d2 * ...]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;
impl Module for Flatten {
    /// Flattens every dimension after the first. Returns `Err` for a scalar.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.flatten_from(1)
    }
}
