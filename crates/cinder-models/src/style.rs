//! Neural style transfer (Gatys, Ecker and Bethge, 2016): an image, whose pixels are the
//! parameters, optimized so that a CNN's features at the content layers match those of a
//! content image and the Gram matrices of its features at the style layers match those of
//! a style image.

use cinder_autograd::{Tensor, no_grad};
use cinder_device::{Error, Result};
use cinder_nn::loss::{Reduction, gram_matrix, mse, style_loss};

use crate::vgg::Vgg;

/// Which layers and weights a [`StyleTransfer`] uses.
#[derive(Clone, Debug, PartialEq)]
pub struct StyleConfig {
    /// torchvision `features` indices (ReLUs) whose activations carry the content (the
    /// usual `relu4_2` of VGG-16 is 20).
    pub content_layers: Vec<usize>,
    /// Indices whose Gram matrices carry the style (the usual `relu1_1 .. relu5_1` of
    /// VGG-16 are 1, 6, 11, 18, 25).
    pub style_layers: Vec<usize>,
    /// Weight of the content loss (the sum over content layers of the feature MSE).
    pub content_weight: f32,
    /// Weight of the style loss (the sum over style layers of the Gram MSE).
    pub style_weight: f32,
    /// Per-channel mean and standard deviation the network expects its input normalized by
    /// (ImageNet's for torchvision weights); the image itself stays in `[0, 1]`.
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
}

impl StyleConfig {
    /// The usual choice for torchvision's VGG-16: content `relu4_2`, style `relu1_1` ..
    /// `relu5_1`, content weight 1, style weight 1e6 (the Gram matrices here are divided
    /// by `C H W`, so they are small), ImageNet normalization.
    pub fn vgg16() -> StyleConfig {
        StyleConfig {
            content_layers: vec![20],
            style_layers: vec![1, 6, 11, 18, 25],
            content_weight: 1.0,
            style_weight: 1e6,
            normalize: Some((vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])),
        }
    }
}

/// The losses of the current image.
pub struct StyleLosses {
    /// `content_weight * content + style_weight * style`, what is minimized.
    pub total: Tensor,
    /// The unweighted content loss.
    pub content: Tensor,
    /// The unweighted style loss.
    pub style: Tensor,
}

/// A style transfer problem: the network, the targets from the content and style images,
/// and the image being optimized.
pub struct StyleTransfer<'a> {
    net: &'a Vgg,
    cfg: StyleConfig,
    content_targets: Vec<Tensor>,
    style_grams: Vec<Tensor>,
    image: Tensor,
    /// `cfg.normalize` as `[1, C, 1, 1]` tensors (mean, 1 / std), uploaded once.
    norm: Option<(Tensor, Tensor)>,
}

impl<'a> StyleTransfer<'a> {
    /// Computes the content features of `content` and the Gram matrices of `style` (both
    /// `[1, C, H, W]` in `[0, 1]`; the sizes may differ) and starts the image at the content
    /// image, a parameter. Returns `Err` when there is no content or style layer, a layer is
    /// not a ReLU or pool of `net`, a weight is negative or not finite, the normalization's
    /// length is not `C`, or an image is not one `[1, C, H, W]` image the network takes.
    pub fn new(
        net: &'a Vgg,
        content: &Tensor,
        style: &Tensor,
        cfg: StyleConfig,
    ) -> Result<StyleTransfer<'a>> {
        let bad = |msg: &str| Error::invalid("StyleTransfer", msg.to_string(), &content.shape());
        if cfg.content_layers.is_empty() || cfg.style_layers.is_empty() {
            return Err(bad("needs at least one content and one style layer"));
        }
        let w_ok = |w: f32| w.is_finite() && w >= 0.0;
        if !w_ok(cfg.content_weight) || !w_ok(cfg.style_weight) {
            return Err(bad("weights must be finite and at least 0"));
        }
        for x in [content, style] {
            let s = x.shape();
            if s.len() != 4 || s[0] != 1 || s[1] != content.shape()[1] {
                return Err(Error::shapes("StyleTransfer", &s, &content.shape()));
            }
        }
        if let Some((m, sd)) = &cfg.normalize
            && (m.len() != content.shape()[1]
                || sd.len() != m.len()
                || sd.iter().any(|&v| v <= 0.0))
        {
            return Err(bad(
                "normalization needs one mean and one positive std per channel",
            ));
        }
        let dev = content.device();
        let c = content.shape()[1];
        let norm = match &cfg.normalize {
            Some((m, sd)) => {
                let inv: Vec<f32> = sd.iter().map(|v| 1.0 / v).collect();
                Some((
                    Tensor::from_slice(&dev, m, &[1, c, 1, 1])?,
                    Tensor::from_slice(&dev, &inv, &[1, c, 1, 1])?,
                ))
            }
            None => None,
        };
        let mut st = StyleTransfer {
            net,
            norm,
            cfg,
            content_targets: vec![],
            style_grams: vec![],
            image: Tensor::parameter(content.detach().deep_clone()?)?,
        };
        no_grad(|| -> Result<()> {
            st.content_targets = st.features(content, &st.cfg.content_layers.clone())?;
            st.style_grams = st
                .features(style, &st.cfg.style_layers.clone())?
                .iter()
                .map(gram_matrix)
                .collect::<Result<_>>()?;
            Ok(())
        })?;
        Ok(st)
    }

    fn features(&self, x: &Tensor, taps: &[usize]) -> Result<Vec<Tensor>> {
        let x = match &self.norm {
            Some((mean, inv)) => x.sub(mean)?.mul(inv)?,
            None => x.clone(),
        };
        self.net.feature_maps(&x, false, taps)
    }

    /// The image being optimized, `[1, C, H, W]`: the parameter to give an optimizer.
    pub fn image(&self) -> &Tensor {
        &self.image
    }

    /// The losses of the current image (recorded, so `total.backward()` fills the image's
    /// gradient). Returns `Err` when the network fails on the image.
    pub fn losses(&self) -> Result<StyleLosses> {
        let mut taps = self.cfg.content_layers.clone();
        taps.extend(&self.cfg.style_layers);
        let f = self.features(&self.image, &taps)?;
        let (fc, fs) = f.split_at(self.cfg.content_layers.len());
        let mut content: Option<Tensor> = None;
        for (x, t) in fc.iter().zip(&self.content_targets) {
            let l = mse(x, t, Reduction::Mean)?;
            content = Some(match content {
                Some(c) => c.add(&l)?,
                None => l,
            });
        }
        let mut style: Option<Tensor> = None;
        for (x, g) in fs.iter().zip(&self.style_grams) {
            let l = style_loss(x, g, Reduction::Mean)?;
            style = Some(match style {
                Some(s) => s.add(&l)?,
                None => l,
            });
        }
        let (content, style) = (
            content.expect("at least one content layer"),
            style.expect("at least one style layer"),
        );
        let total = content
            .mul_scalar(self.cfg.content_weight)?
            .add(&style.mul_scalar(self.cfg.style_weight)?)?;
        Ok(StyleLosses {
            total,
            content,
            style,
        })
    }

    /// Clamps the image to `[0, 1]` in place (after an optimizer step, as the PyTorch
    /// tutorial does). Returns `Err` when the device fails.
    pub fn clamp_image(&self) -> Result<()> {
        let c = no_grad(|| self.image.clamp(0.0, 1.0))?;
        self.image.set_data(&c)
    }
}
