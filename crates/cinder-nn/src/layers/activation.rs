//! Activations as modules (`nn.ReLU`, `nn.LeakyReLU`, ...) and `Flatten`.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};

use crate::init::Init;
use crate::module::Module;
use crate::var_store::Path;

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

/// `nn.GELU(approximate=...)`: the exact erf form by default, PyTorch's tanh
/// approximation with [`Gelu::tanh`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gelu {
    /// Use the tanh approximation (`approximate="tanh"`).
    pub tanh: bool,
}
impl Gelu {
    /// `nn.GELU()`, the erf form.
    pub fn new() -> Gelu {
        Gelu { tanh: false }
    }
    /// `nn.GELU(approximate="tanh")`.
    pub fn tanh() -> Gelu {
        Gelu { tanh: true }
    }
}
impl Module for Gelu {
    /// GELU. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.tanh { x.gelu_tanh() } else { x.gelu() }
    }
}

/// `nn.SiLU()`: `x * sigmoid(x)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silu;
impl Module for Silu {
    /// SiLU. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.silu()
    }
}

/// `nn.Mish()`: `x * tanh(softplus(x))`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mish;
impl Module for Mish {
    /// Mish. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.mish()
    }
}

/// `nn.Hardtanh(min_val, max_val)` (defaults -1 and 1): clamp, with PyTorch's hardtanh
/// gradient (0 at the bounds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hardtanh {
    /// Lower bound.
    pub min_val: f32,
    /// Upper bound.
    pub max_val: f32,
}
impl Default for Hardtanh {
    fn default() -> Self {
        Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        }
    }
}
impl Module for Hardtanh {
    /// `clamp(x, min_val, max_val)`. Returns `Err` when `min_val > max_val` or for `u32`
    /// input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.hardtanh(self.min_val, self.max_val)
    }
}

/// `nn.ReLU6()`: `Hardtanh(0, 6)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Relu6;
impl Module for Relu6 {
    /// `clamp(x, 0, 6)`. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.hardtanh(0.0, 6.0)
    }
}

/// `nn.Hardsigmoid()`: `clamp(x / 6 + 1/2, 0, 1)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hardsigmoid;
impl Module for Hardsigmoid {
    /// Hardsigmoid. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.hardsigmoid()
    }
}

/// `nn.Hardswish()`: `x * hardsigmoid(x)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hardswish;
impl Module for Hardswish {
    /// Hardswish. Returns `Err` for `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.hardswish()
    }
}

/// `nn.PReLU(num_parameters, init)`: `x > 0 ? x : a x` with a learned slope `weight` of
/// shape `[num_parameters]` (1, shared, or one per channel of dimension 1), filled with
/// `init` (PyTorch's default 0.25).
pub struct PRelu {
    /// `[num_parameters]`.
    pub weight: Tensor,
}
impl PRelu {
    /// Creates `weight` under `path`. Returns `Err` for zero parameters or a taken name.
    pub fn new(path: &Path, num_parameters: usize, init: f32) -> Result<PRelu> {
        if num_parameters == 0 {
            return Err(Error::invalid(
                "PReLU",
                "num_parameters must be positive",
                &[0],
            ));
        }
        let weight = path.var("weight", &[num_parameters], Init::Constant(init))?;
        Ok(PRelu { weight })
    }
}
impl Module for PRelu {
    /// PReLU over dimension 1. Returns `Err` when `num_parameters` is neither 1 nor the
    /// input's channel count.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.prelu(&self.weight)
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
