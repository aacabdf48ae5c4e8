//! LeNet-5 (LeCun et al., 1998) adapted to 28x28 inputs with padding 2, with ReLU and max
//! pooling in place of the original's scaled tanh and subsampling.

use cinder_autograd::Tensor;
use cinder_device::Result;
use cinder_nn::{Conv2d, Conv2dConfig, Linear, MaxPool2d, Module, Path};

/// `conv1 (1->6, 5x5, pad 2) - relu - maxpool 2 - conv2 (6->16, 5x5) - relu - maxpool 2 -
/// fc1 (400->120) - relu - fc2 (120->84) - relu - fc3 (84->classes)` on `[N, 1, 28, 28]`.
pub struct LeNet5 {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    pool: MaxPool2d,
}

impl LeNet5 {
    /// Creates the layers under `path` (`conv1`, `conv2`, `fc1`, `fc2`, `fc3`). Returns
    /// `Err` when a name is taken or `classes` is zero.
    pub fn new(path: &Path, in_channels: usize, classes: usize) -> Result<LeNet5> {
        let pad2 = Conv2dConfig::default().padding(2);
        Ok(LeNet5 {
            conv1: Conv2d::new(&path.pp("conv1"), in_channels, 6, 5, pad2)?,
            conv2: Conv2d::new(&path.pp("conv2"), 6, 16, 5, Default::default())?,
            fc1: Linear::new(&path.pp("fc1"), 16 * 5 * 5, 120, true)?,
            fc2: Linear::new(&path.pp("fc2"), 120, 84, true)?,
            fc3: Linear::new(&path.pp("fc3"), 84, classes, true)?,
            pool: MaxPool2d::new(2),
        })
    }
}

impl Module for LeNet5 {
    /// `[N, C, 28, 28]` to `[N, classes]` logits. Returns `Err` for other input sizes.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.pool.forward(&self.conv1.forward(x)?.relu()?)?;
        let h = self.pool.forward(&self.conv2.forward(&h)?.relu()?)?;
        let h = self.fc1.forward_relu(&h.flatten_from(1)?)?;
        let h = self.fc2.forward_relu(&h)?;
        self.fc3.forward(&h)
    }
}
