//! AlexNet (Krizhevsky, Sutskever and Hinton, 2012) in torchvision's layout and names, so a
//! torchvision `alexnet` state dict loads by name, and a 32x32 variant with the same names
//! for CIFAR-sized images.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::{
    AdaptiveAvgPool2d, Conv2d, Conv2dConfig, Dropout, Linear, MaxPool2d, Module, ModuleT, Path,
};

/// Which input size the network is laid out for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlexNetVariant {
    /// torchvision's `alexnet`: `features.0` is an 11x11 convolution with stride 4 and
    /// padding 2, the pools are 3x3 with stride 2, and `avgpool` is an adaptive average
    /// pool to 6x6 (so any input of at least 63x63 works; 224x224 is the usual).
    ImageNet,
    /// For 32x32 inputs: `features.0` is a 3x3 convolution with stride 2 and padding 1,
    /// `features.3` a 3x3 convolution with padding 1, the pools 2x2, and `avgpool` an
    /// adaptive average pool to 2x2 (the identity on 32x32 inputs). The names, the
    /// channel counts (64, 192, 384, 256, 256) and the classifier's layout are
    /// torchvision's.
    Cifar,
}

/// What an [`AlexNet`] is built with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlexNetConfig {
    /// The layout.
    pub variant: AlexNetVariant,
    /// Input channels (3 for colour images).
    pub in_channels: usize,
    /// Output classes.
    pub classes: usize,
    /// Width of the two hidden linear layers (torchvision's 4096).
    pub hidden: usize,
    /// Divides every convolution's channel count (1 for the real model; larger for quick
    /// tests).
    pub width_div: usize,
    /// Dropout before `classifier.1` and `classifier.4` (torchvision's 0.5).
    pub dropout: f32,
}

impl AlexNetConfig {
    /// torchvision's `alexnet(num_classes=classes)`: 3 input channels, hidden 4096, dropout
    /// 0.5.
    pub fn torchvision(classes: usize) -> AlexNetConfig {
        AlexNetConfig {
            variant: AlexNetVariant::ImageNet,
            in_channels: 3,
            classes,
            hidden: 4096,
            width_div: 1,
            dropout: 0.5,
        }
    }

    /// The 32x32 variant with torchvision's widths (hidden 4096, dropout 0.5).
    pub fn cifar(classes: usize) -> AlexNetConfig {
        AlexNetConfig {
            variant: AlexNetVariant::Cifar,
            ..AlexNetConfig::torchvision(classes)
        }
    }
}

/// AlexNet: `features.{0,3,6,8,10}` convolutions with ReLU, max pools after the first,
/// second and fifth, `avgpool`, then `classifier`: dropout, `classifier.1` (-> hidden),
/// ReLU, dropout, `classifier.4` (hidden -> hidden), ReLU, `classifier.6` (-> classes).
pub struct AlexNet {
    convs: [Conv2d; 5],
    pool: MaxPool2d,
    avgpool: AdaptiveAvgPool2d,
    fc: [Linear; 3],
    dropout: Option<Dropout>,
    in_channels: usize,
}

impl AlexNet {
    /// Creates the layers under `path`; `seed` drives the dropout masks. Returns `Err` for a
    /// zero size, a `width_div` that leaves a zero channel count, a dropout outside
    /// `[0, 1]`, or a taken name.
    pub fn new(path: &Path, cfg: &AlexNetConfig, seed: u64) -> Result<AlexNet> {
        let d = cfg.width_div;
        let widths = [64, 192, 384, 256, 256];
        if d == 0
            || widths.iter().any(|w| w / d == 0)
            || cfg.in_channels * cfg.classes * cfg.hidden == 0
        {
            return Err(Error::invalid(
                "AlexNet",
                "zero channels, classes or hidden width, or a width_div that leaves zero channels",
                &[cfg.in_channels, cfg.classes, cfg.hidden, d],
            ));
        }
        let w = widths.map(|w| w / d);
        let f = path.pp("features");
        let c = |i: usize| f.pp(&i.to_string());
        let p1 = Conv2dConfig::default().padding(1);
        let (first, second, pool, side) = match cfg.variant {
            AlexNetVariant::ImageNet => (
                Conv2d::new(
                    &c(0),
                    cfg.in_channels,
                    w[0],
                    11,
                    Conv2dConfig::default().stride(4).padding(2),
                )?,
                Conv2d::new(&c(3), w[0], w[1], 5, Conv2dConfig::default().padding(2))?,
                MaxPool2d::new(3).stride(2),
                6,
            ),
            AlexNetVariant::Cifar => (
                Conv2d::new(
                    &c(0),
                    cfg.in_channels,
                    w[0],
                    3,
                    Conv2dConfig::default().stride(2).padding(1),
                )?,
                Conv2d::new(&c(3), w[0], w[1], 3, p1)?,
                MaxPool2d::new(2),
                2,
            ),
        };
        let cl = path.pp("classifier");
        Ok(AlexNet {
            convs: [
                first,
                second,
                Conv2d::new(&c(6), w[1], w[2], 3, p1)?,
                Conv2d::new(&c(8), w[2], w[3], 3, p1)?,
                Conv2d::new(&c(10), w[3], w[4], 3, p1)?,
            ],
            pool,
            avgpool: AdaptiveAvgPool2d::new(side),
            fc: [
                Linear::new(&cl.pp("1"), w[4] * side * side, cfg.hidden, true)?,
                Linear::new(&cl.pp("4"), cfg.hidden, cfg.hidden, true)?,
                Linear::new(&cl.pp("6"), cfg.hidden, cfg.classes, true)?,
            ],
            dropout: (cfg.dropout > 0.0)
                .then(|| Dropout::new(cfg.dropout, seed))
                .transpose()?,
            in_channels: cfg.in_channels,
        })
    }

    /// The convolutional features after `avgpool`, `[N, 256 / width_div, s, s]` (s = 6, or
    /// 2 for the 32x32 variant). Returns `Err` for an input that is not `[N, C, H, W]` with
    /// the configured channels, or too small for the pools.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1] != self.in_channels {
            return Err(Error::shapes("AlexNet", &s, &[self.in_channels]));
        }
        let mut h = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            h = conv.forward(&h)?.relu()?;
            if matches!(i, 0 | 1 | 4) {
                h = self.pool.forward(&h)?;
            }
        }
        self.avgpool.forward(&h)
    }
}

impl ModuleT for AlexNet {
    /// `[N, C, H, W]` to `[N, classes]` logits; dropout only when `train`. Errors as
    /// [`AlexNet::features`].
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self.features(x)?.flatten_from(1)?;
        for (i, fc) in self.fc.iter().enumerate() {
            if i < 2 {
                if let Some(d) = &self.dropout {
                    h = d.forward_t(&h, train)?;
                }
                h = fc.forward_relu(&h)?;
            } else {
                h = fc.forward(&h)?;
            }
        }
        Ok(h)
    }
}
