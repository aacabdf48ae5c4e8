//! A Vision Transformer (Dosovitskiy et al., 2021) for small images: non-overlapping patches
//! linearly embedded, a class token, learned positions, a pre-norm Transformer encoder, and
//! a linear head on the class token.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::{
    Activation, AttentionArgs, EncoderMasks, Init, LayerNorm, LayerNormConfig,
    LearnedPositionalEmbedding, Linear, Module, ModuleT, Path, TransformerEncoder,
    TransformerEncoderLayerConfig,
};

/// The shape of a [`VisionTransformer`].
#[derive(Clone, Copy, Debug)]
pub struct VitConfig {
    /// Image side (square images).
    pub image: usize,
    /// Input channels.
    pub channels: usize,
    /// Patch side; must divide `image`.
    pub patch: usize,
    /// Model width.
    pub dim: usize,
    /// Encoder layers.
    pub depth: usize,
    /// Attention heads; must divide `dim`.
    pub heads: usize,
    /// Feed-forward width.
    pub mlp_dim: usize,
    /// Dropout in the encoder.
    pub dropout: f32,
    /// Classes.
    pub classes: usize,
    /// Seed of the dropout masks.
    pub seed: u64,
}

impl VitConfig {
    /// The ViT of the course's exercise: 28x28 grey images, 7x7 patches, width 64, 4 layers,
    /// 4 heads, feed-forward 128, no dropout, 10 classes.
    pub fn mnist() -> VitConfig {
        VitConfig {
            image: 28,
            channels: 1,
            patch: 7,
            dim: 64,
            depth: 4,
            heads: 4,
            mlp_dim: 128,
            dropout: 0.0,
            classes: 10,
            seed: 0,
        }
    }

    fn patches(&self) -> usize {
        (self.image / self.patch).pow(2)
    }
}

/// `patch_embed` (a Linear over flattened patches), `cls_token [1, 1, dim]`, `pos_embed`
/// (`[patches + 1, dim]`), `encoder` (pre-norm, GELU), `norm`, `head`.
pub struct VisionTransformer {
    /// Flattened patch (`channels * patch^2`) to `dim`.
    pub patch_embed: Linear,
    /// The learned class token, `[1, 1, dim]`.
    pub cls_token: Tensor,
    /// Learned positions for the class token and every patch.
    pub pos_embed: LearnedPositionalEmbedding,
    /// The encoder.
    pub encoder: TransformerEncoder,
    /// The final norm.
    pub norm: LayerNorm,
    /// `dim -> classes` on the class token.
    pub head: Linear,
    cfg: VitConfig,
}

impl VisionTransformer {
    /// Creates the model under `path`. Returns `Err` when the patch does not divide the
    /// image, the heads do not divide the width, a size is zero, or a name is taken.
    pub fn new(path: &Path, cfg: VitConfig) -> Result<VisionTransformer> {
        if cfg.patch == 0 || cfg.image == 0 || !cfg.image.is_multiple_of(cfg.patch) {
            return Err(Error::invalid(
                "VisionTransformer",
                "the patch must divide the image",
                &[cfg.image, cfg.patch],
            ));
        }
        let mut lc = TransformerEncoderLayerConfig::new(cfg.dim, cfg.heads);
        lc.dim_feedforward = cfg.mlp_dim;
        lc.dropout = cfg.dropout;
        lc.activation = Activation::Gelu;
        lc.batch_first = true;
        lc.norm_first = true;
        lc.seed = cfg.seed;
        let pd = cfg.channels * cfg.patch * cfg.patch;
        Ok(VisionTransformer {
            patch_embed: Linear::new(&path.pp("patch_embed"), pd, cfg.dim, true)?,
            cls_token: path.var(
                "cls_token",
                &[1, 1, cfg.dim],
                Init::Normal {
                    mean: 0.0,
                    std: 0.02,
                },
            )?,
            pos_embed: LearnedPositionalEmbedding::new(
                &path.pp("pos_embed"),
                cfg.patches() + 1,
                cfg.dim,
                0.02,
            )?,
            encoder: TransformerEncoder::new(&path.pp("encoder"), lc, cfg.depth, false)?,
            norm: LayerNorm::new(&path.pp("norm"), &[cfg.dim], LayerNormConfig::default())?,
            head: Linear::new(&path.pp("head"), cfg.dim, cfg.classes, true)?,
            cfg,
        })
    }

    /// `[N, C, H, W]` to the token sequence `[N, 1 + patches, dim]` (class token first,
    /// positions added).
    fn tokens(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        let s = x.shape();
        if s.len() != 4 || s[1] != c.channels || s[2] != c.image || s[3] != c.image {
            return Err(Error::invalid(
                "VisionTransformer",
                format!("expects [N, {}, {}, {}]", c.channels, c.image, c.image),
                &s,
            ));
        }
        let (n, g, p) = (s[0], c.image / c.patch, c.patch);
        // [N, C, g, p, g, p] -> [N, g, g, C, p, p] -> [N, g*g, C*p*p]
        let patches = x
            .reshape(&[n, c.channels, g, p, g, p])?
            .permute(&[0, 2, 4, 1, 3, 5])?
            .reshape(&[n, g * g, c.channels * p * p])?;
        let emb = self.patch_embed.forward(&patches)?;
        let cls = self.cls_token.broadcast_to(&[n, 1, c.dim])?;
        self.pos_embed.forward(&Tensor::concat(&[&cls, &emb], 1)?)
    }

    /// The class token's attention over the patches in the last layer, averaged over the
    /// heads: `[N, patches]`, each row summing to 1 less the class token's own share. Errors
    /// as the forward.
    pub fn class_attention(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.tokens(x)?;
        let layers = &self.encoder.layers;
        for l in &layers[..layers.len() - 1] {
            h = l.forward(&h, EncoderMasks::default(), false)?;
        }
        let last = &layers[layers.len() - 1];
        let z = last.norm1.forward(&h)?;
        let args = AttentionArgs {
            need_weights: true,
            average_attn_weights: true,
            ..Default::default()
        };
        let (_, w) = last.self_attn.forward(&z, &z, &z, args, false)?;
        let w = w.expect("weights were asked for"); // [N, T, T]
        let t = w.shape()[1];
        w.narrow(1, 0, 1)?
            .narrow(2, 1, t - 1)?
            .reshape(&[w.shape()[0], t - 1])
    }
}

impl ModuleT for VisionTransformer {
    /// `[N, C, H, W]` to `[N, classes]` logits; `train` turns dropout on. Returns `Err` for
    /// another image shape.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self
            .encoder
            .forward(&self.tokens(x)?, EncoderMasks::default(), train)?;
        let n = h.shape()[0];
        let cls = h.narrow(1, 0, 1)?.reshape(&[n, self.cfg.dim])?;
        self.head.forward(&self.norm.forward(&cls)?)
    }
}
