//! ResNets with basic blocks (He et al.): ResNet-18 with a CIFAR stem, and the CIFAR
//! ResNet-20.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::{AdaptiveAvgPool2d, BatchNorm, Conv2d, Conv2dConfig, Linear, ModuleT, Path};

fn conv(path: &Path, i: usize, o: usize, k: usize, stride: usize) -> Result<Conv2d> {
    let cfg = Conv2dConfig::default()
        .stride(stride)
        .padding(k / 2)
        .bias(false);
    Conv2d::new(path, i, o, k, cfg)
}

/// Two 3x3 conv + batch-norm layers with a shortcut: the identity, or a 1x1 strided conv +
/// batch norm when the shape changes (PyTorch's `downsample`, option B of the paper).
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    /// A block from `i` to `o` channels with `stride`, under `path` (`conv1`, `bn1`,
    /// `conv2`, `bn2`, `downsample.0`, `downsample.1`). Returns `Err` for zero sizes.
    pub fn new(path: &Path, i: usize, o: usize, stride: usize) -> Result<BasicBlock> {
        let downsample = if stride != 1 || i != o {
            let d = path.pp("downsample");
            Some((
                conv(&d.pp("0"), i, o, 1, stride)?,
                BatchNorm::new_2d(&d.pp("1"), o, Default::default())?,
            ))
        } else {
            None
        };
        Ok(BasicBlock {
            conv1: conv(&path.pp("conv1"), i, o, 3, stride)?,
            bn1: BatchNorm::new_2d(&path.pp("bn1"), o, Default::default())?,
            conv2: conv(&path.pp("conv2"), o, o, 3, 1)?,
            bn2: BatchNorm::new_2d(&path.pp("bn2"), o, Default::default())?,
            downsample,
        })
    }
}

impl ModuleT for BasicBlock {
    /// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self
            .bn1
            .forward_t(&self.conv1.forward_t(x, train)?, train)?
            .relu()?;
        let h = self
            .bn2
            .forward_t(&self.conv2.forward_t(&h, train)?, train)?;
        let s = match &self.downsample {
            Some((c, b)) => b.forward_t(&c.forward_t(x, train)?, train)?,
            None => x.clone(),
        };
        h.add(&s)?.relu()
    }
}

/// A ResNet of basic blocks on 32x32 inputs: a 3x3 stem (no max pool), stages of blocks
/// (the first block of each later stage strides by 2), global average pooling, `fc`.
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    blocks: Vec<BasicBlock>,
    pool: AdaptiveAvgPool2d,
    fc: Linear,
}

impl ResNet {
    /// A ResNet with `blocks[s]` blocks of `widths[s]` channels in stage `s`, named as
    /// torchvision (`layer1.0.conv1.weight`, ...). Returns `Err` when the lists are empty
    /// or of different lengths.
    pub fn new(
        path: &Path,
        widths: &[usize],
        blocks: &[usize],
        in_channels: usize,
        classes: usize,
    ) -> Result<ResNet> {
        if widths.is_empty() || widths.len() != blocks.len() {
            return Err(Error::invalid(
                "ResNet",
                "one block count per stage width",
                widths,
            ));
        }
        let conv1 = conv(&path.pp("conv1"), in_channels, widths[0], 3, 1)?;
        let bn1 = BatchNorm::new_2d(&path.pp("bn1"), widths[0], Default::default())?;
        let mut all = Vec::new();
        let mut ch = widths[0];
        for (s, (&w, &n)) in widths.iter().zip(blocks).enumerate() {
            let stage = path.pp(&format!("layer{}", s + 1));
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                all.push(BasicBlock::new(&stage.pp(&b.to_string()), ch, w, stride)?);
                ch = w;
            }
        }
        Ok(ResNet {
            conv1,
            bn1,
            blocks: all,
            pool: AdaptiveAvgPool2d::new(1),
            fc: Linear::new(&path.pp("fc"), ch, classes, true)?,
        })
    }

    /// ResNet-18 (stages of 2 blocks, 64-512 channels) with a CIFAR stem, widths divided by
    /// `width_div` (1 for the real model). Errors as [`ResNet::new`].
    pub fn resnet18(
        path: &Path,
        in_channels: usize,
        classes: usize,
        width_div: usize,
    ) -> Result<ResNet> {
        let w: Vec<usize> = [64, 128, 256, 512]
            .iter()
            .map(|c| (c / width_div.max(1)).max(1))
            .collect();
        Self::new(path, &w, &[2, 2, 2, 2], in_channels, classes)
    }

    /// The CIFAR ResNet-20 (3 stages of 3 blocks, 16/32/64 channels). Errors as
    /// [`ResNet::new`].
    pub fn resnet20(path: &Path, in_channels: usize, classes: usize) -> Result<ResNet> {
        Self::new(path, &[16, 32, 64], &[3, 3, 3], in_channels, classes)
    }
}

impl ModuleT for ResNet {
    /// `[N, C, H, W]` to `[N, classes]` logits.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self
            .bn1
            .forward_t(&self.conv1.forward_t(x, train)?, train)?
            .relu()?;
        for b in &self.blocks {
            h = b.forward_t(&h, train)?;
        }
        let h = self.pool.forward_t(&h, train)?.flatten_from(1)?;
        self.fc.forward_t(&h, train)
    }
}
