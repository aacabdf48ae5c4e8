//! Domain-adversarial training (Ganin and Lempitsky, 2015; Ganin et al., 2016): a feature
//! extractor shared by a label head, trained on labelled source images, and a domain head
//! behind a gradient-reversal layer, trained to tell source from target features. The
//! reversal makes the extractor maximize the domain loss while the head minimizes it, so
//! the features come to carry the label and not the domain.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::loss::{CrossEntropy, Reduction, bce_with_logits, cross_entropy};
use cinder_nn::{Conv2d, Conv2dConfig, Linear, MaxPool2d, Module, Path};

/// The paper's MNIST architecture: features `conv1 (C->32, 5x5) - relu - maxpool 2 - conv2
/// (32->48, 5x5) - relu - maxpool 2` (768 values for 28x28), a label head `label.fc1 (->100)
/// - relu - label.fc2 (->100) - relu - label.fc3 (->classes)` and a domain head
/// `domain.fc1 (->100) - relu - domain.fc2 (->1)` (one logit: target against source).
pub struct Dann {
    conv1: Conv2d,
    conv2: Conv2d,
    label: [Linear; 3],
    domain: [Linear; 2],
    pool: MaxPool2d,
    image: [usize; 3],
}

/// The losses of one [`Dann::loss`] step.
pub struct DannLoss {
    /// What to minimize: `label + domain` (the reversal turns the domain term's gradient
    /// around for the extractor), or `label` alone when `lambda` is `None`.
    pub total: Tensor,
    /// Cross-entropy of the label head on the source images.
    pub label: Tensor,
    /// Binary cross-entropy of the domain head on source (0) and target (1) images; zero
    /// without the domain term.
    pub domain: Tensor,
}

impl Dann {
    /// Creates the layers under `path` for images `[C, H, W]` and `classes` labels.
    /// Returns `Err` for a zero size, sides below 16 or not divisible by 4 after the
    /// convolutions (`(H - 4) / 2 - 4` must be even and positive), or a taken name.
    pub fn new(path: &Path, image: [usize; 3], classes: usize) -> Result<Dann> {
        let [c, h, w] = image;
        let side = |s: usize| {
            (s >= 16 && (s - 4).is_multiple_of(2) && ((s - 4) / 2 - 4).is_multiple_of(2))
                .then(|| ((s - 4) / 2 - 4) / 2)
        };
        let (Some(fh), Some(fw)) = (side(h), side(w)) else {
            return Err(Error::invalid(
                "Dann",
                "image sides must be at least 16 and pool evenly after the 5x5 convolutions",
                &image,
            ));
        };
        if c * classes == 0 {
            return Err(Error::invalid("Dann", "zero channels or classes", &image));
        }
        let feat = 48 * fh * fw;
        let (lp, dp) = (path.pp("label"), path.pp("domain"));
        let k = Conv2dConfig::default();
        Ok(Dann {
            conv1: Conv2d::new(&path.pp("conv1"), c, 32, 5, k)?,
            conv2: Conv2d::new(&path.pp("conv2"), 32, 48, 5, k)?,
            label: [
                Linear::new(&lp.pp("fc1"), feat, 100, true)?,
                Linear::new(&lp.pp("fc2"), 100, 100, true)?,
                Linear::new(&lp.pp("fc3"), 100, classes, true)?,
            ],
            domain: [
                Linear::new(&dp.pp("fc1"), feat, 100, true)?,
                Linear::new(&dp.pp("fc2"), 100, 1, true)?,
            ],
            pool: MaxPool2d::new(2),
            image,
        })
    }

    /// The extractor's features `[N, 768]` (for 28x28) of images `[N, C, H, W]`. Returns
    /// `Err` for another image shape.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1..] != self.image {
            return Err(Error::shapes("Dann", &s, &self.image));
        }
        let h = self.pool.forward(&self.conv1.forward(x)?.relu()?)?;
        let h = self.pool.forward(&self.conv2.forward(&h)?.relu()?)?;
        h.flatten_from(1)
    }

    /// The label head's logits `[N, classes]` of features. Returns `Err` for features of
    /// another width.
    pub fn classify(&self, features: &Tensor) -> Result<Tensor> {
        let h = self.label[0].forward_relu(features)?;
        let h = self.label[1].forward_relu(&h)?;
        self.label[2].forward(&h)
    }

    /// The domain head's logits `[N]` (target against source) of features seen through
    /// `grad_reverse(lambda)`. Returns `Err` for features of another width or a lambda
    /// that is not finite.
    pub fn domain_logits(&self, features: &Tensor, lambda: f32) -> Result<Tensor> {
        let h = self.domain[0].forward_relu(&features.grad_reverse(lambda)?)?;
        let n = h.shape()[0];
        self.domain[1].forward(&h)?.reshape(&[n])
    }

    /// One step's losses: cross-entropy of `labels` (`u32` `[N]`) on `source` images, and,
    /// with `lambda` given, the domain loss of `source` (domain 0) and `target` (domain 1)
    /// images, each domain weighted by its share of the batch (the mean over all of them).
    /// `lambda: None` trains on the source alone (the source-only baseline; `target` is
    /// then not read). Returns `Err` on shape mismatch or a lambda that is not finite.
    pub fn loss(
        &self,
        source: &Tensor,
        labels: &Tensor,
        target: &Tensor,
        lambda: Option<f32>,
    ) -> Result<DannLoss> {
        let opts = CrossEntropy::default();
        let Some(lambda) = lambda else {
            let label = cross_entropy(&self.classify(&self.features(source)?)?, labels, &opts)?;
            let domain = Tensor::scalar(&label.device(), 0.0)?;
            return Ok(DannLoss {
                total: label.clone(),
                label,
                domain,
            });
        };
        let (ns, nt) = (
            source.shape()[0],
            target.shape().first().copied().unwrap_or(0),
        );
        // one pass of the extractor over both domains
        let f = self.features(&Tensor::concat(&[source, target], 0)?)?;
        let label = cross_entropy(&self.classify(&f.narrow(0, 0, ns)?)?, labels, &opts)?;
        let d: Vec<f32> = (0..ns + nt).map(|i| (i >= ns) as u8 as f32).collect();
        let d = Tensor::from_slice(&label.device(), &d, &[ns + nt])?;
        let domain = bce_with_logits(&self.domain_logits(&f, lambda)?, &d, None, Reduction::Mean)?;
        Ok(DannLoss {
            total: label.add(&domain)?,
            label,
            domain,
        })
    }
}

impl Module for Dann {
    /// `[N, C, H, W]` to `[N, classes]` logits: the label head on the features. Returns
    /// `Err` for another image shape.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(&self.features(x)?)
    }
}

/// The adaptation factor of Ganin and Lempitsky, `2 / (1 + exp(-gamma p)) - 1` at training
/// progress `p` in `[0, 1]` (`gamma = 10` in the paper): 0 at the start, so the domain
/// head's noisy early signal does not disturb the extractor, rising to nearly 1. `p` is
/// clamped to `[0, 1]`; a NaN `p` or `gamma` gives 0.
pub fn dann_lambda(p: f64, gamma: f64) -> f32 {
    let v = 2.0 / (1.0 + (-gamma * p.clamp(0.0, 1.0)).exp()) - 1.0;
    if v.is_nan() { 0.0 } else { v as f32 }
}
