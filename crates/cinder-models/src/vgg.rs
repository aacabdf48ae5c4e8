//! VGG (Simonyan and Zisserman) sized for 32x32 inputs: the configuration's conv stack,
//! optional batch norm, then one linear classifier (the CIFAR variant).

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::{BatchNorm, Conv2d, Conv2dConfig, Linear, MaxPool2d, ModuleT, Path};

/// One entry of a VGG configuration: a 3x3 convolution with that many channels, or a 2x2
/// max pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VggItem {
    /// 3x3 convolution (padding 1) to this many channels, then (batch norm and) ReLU.
    Conv(usize),
    /// 2x2 max pooling.
    Pool,
}

use VggItem::{Conv as C, Pool as P};

/// VGG-11's configuration ("A").
pub const VGG11: &[VggItem] = &[
    C(64),
    P,
    C(128),
    P,
    C(256),
    C(256),
    P,
    C(512),
    C(512),
    P,
    C(512),
    C(512),
    P,
];
/// VGG-16's configuration ("D").
pub const VGG16: &[VggItem] = &[
    C(64),
    C(64),
    P,
    C(128),
    C(128),
    P,
    C(256),
    C(256),
    C(256),
    P,
    C(512),
    C(512),
    C(512),
    P,
    C(512),
    C(512),
    C(512),
    P,
];

enum Layer {
    Conv(Conv2d, Option<BatchNorm>),
    Pool(MaxPool2d),
}

/// A VGG network: `features.{i}` convolutions (and `features.{i+1}` batch norms, PyTorch's
/// indices) then `classifier`. Channel counts are divided by `width_div` (1 for the real
/// model; larger for quick tests).
pub struct Vgg {
    layers: Vec<Layer>,
    /// torchvision's `features` index of each layer's output: the ReLU after a
    /// convolution (and batch norm), or the pool.
    outputs: Vec<usize>,
    classifier: Linear,
}

impl Vgg {
    /// Builds `cfg` for `in_channels` inputs of 32x32 and `classes` outputs. Returns `Err`
    /// for an empty configuration, one without exactly five pools (32 -> 1), or a
    /// `width_div` that leaves a zero channel count.
    pub fn new(
        path: &Path,
        cfg: &[VggItem],
        in_channels: usize,
        classes: usize,
        batch_norm: bool,
        width_div: usize,
    ) -> Result<Vgg> {
        let pools = cfg.iter().filter(|i| **i == P).count();
        if pools != 5 || width_div == 0 {
            return Err(Error::invalid(
                "Vgg",
                "a 32x32 VGG needs five pools and a positive width divisor",
                &[pools, width_div],
            ));
        }
        let f = path.pp("features");
        let mut layers = Vec::new();
        let mut outputs = Vec::new();
        let mut ch = in_channels;
        let mut idx = 0;
        for item in cfg {
            match *item {
                VggItem::Conv(out) => {
                    let out = out / width_div;
                    if out == 0 {
                        return Err(Error::invalid(
                            "Vgg",
                            "width_div leaves zero channels",
                            &[width_div],
                        ));
                    }
                    let cfg = Conv2dConfig::default().padding(1);
                    let conv = Conv2d::new(&f.pp(&idx.to_string()), ch, out, 3, cfg)?;
                    let bn = batch_norm
                        .then(|| {
                            BatchNorm::new_2d(
                                &f.pp(&(idx + 1).to_string()),
                                out,
                                Default::default(),
                            )
                        })
                        .transpose()?;
                    idx += if batch_norm { 3 } else { 2 };
                    outputs.push(idx - 1);
                    layers.push(Layer::Conv(conv, bn));
                    ch = out;
                }
                VggItem::Pool => {
                    layers.push(Layer::Pool(MaxPool2d::new(2)));
                    outputs.push(idx);
                    idx += 1;
                }
            }
        }
        let classifier = Linear::new(&path.pp("classifier"), ch, classes, true)?;
        Ok(Vgg {
            layers,
            outputs,
            classifier,
        })
    }

    /// The feature maps at torchvision's `features` indices `taps` (each the index of a
    /// ReLU, as `relu1_1` = 1, `relu2_1` = 6, `relu3_1` = 11, `relu4_1` = 18, `relu4_2` = 20,
    /// `relu5_1` = 25 in VGG-16 without batch norm, or of a pool), in the order of `taps`;
    /// the layers past the deepest tap are not run. Any input of at least 1x1 after the
    /// pools it passes works (the classifier is not used). Returns `Err` when a tap is not
    /// the output index of a ReLU or pool, or the input does not fit the layers.
    pub fn feature_maps(&self, x: &Tensor, train: bool, taps: &[usize]) -> Result<Vec<Tensor>> {
        if let Some(&t) = taps.iter().find(|t| !self.outputs.contains(t)) {
            return Err(Error::invalid(
                "Vgg::feature_maps",
                format!(
                    "{t} is not a ReLU or pool index of `features` (those are {:?})",
                    self.outputs
                ),
                &[t],
            ));
        }
        let deepest = taps.iter().copied().max().unwrap_or(0);
        let mut found: Vec<Option<Tensor>> = vec![None; taps.len()];
        let mut h = x.clone();
        for (l, &at) in self.layers.iter().zip(&self.outputs) {
            if at > deepest || taps.is_empty() {
                break;
            }
            h = self.layer(l, &h, train)?;
            for (k, &t) in taps.iter().enumerate() {
                if t == at {
                    found[k] = Some(h.clone());
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    fn layer(&self, l: &Layer, h: &Tensor, train: bool) -> Result<Tensor> {
        match l {
            Layer::Conv(c, bn) => {
                let y = c.forward_t(h, train)?;
                let y = match bn {
                    Some(bn) => bn.forward_t(&y, train)?,
                    None => y,
                };
                y.relu()
            }
            Layer::Pool(p) => p.forward_t(h, train),
        }
    }
}

impl ModuleT for Vgg {
    /// `[N, C, 32, 32]` to `[N, classes]` logits. Returns `Err` for other input sizes.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = self.layer(l, &h, train)?;
        }
        self.classifier.forward_t(&h.flatten_from(1)?, train)
    }
}
