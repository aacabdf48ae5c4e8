//! Attention with PyTorch's semantics: `scaled_dot_product_attention` (F.scaled_dot_product_
//! attention) and `MultiheadAttention` (nn.MultiheadAttention, its parameter names and
//! init). The mask, the scale and the softmax are one kernel
//! ([`Tensor::masked_softmax`]); the products are batched matmuls over batch and heads.
//!
//! Boolean masks are u32 tensors (nonzero = true). As in PyTorch, a true entry of
//! `scaled_dot_product_attention`'s mask lets a key take part, while a true entry of
//! `MultiheadAttention`'s `attn_mask` or `key_padding_mask` keeps it out. Float masks are
//! added to the scores. A query whose every key is masked attends to nothing: its output is
//! zeros (F.scaled_dot_product_attention's rule; nn.MultiheadAttention with
//! `need_weights=True` gives NaN there instead, a difference listed in docs/conformance.md).

use std::sync::atomic::{AtomicU64, Ordering};

use cinder_autograd::Tensor;
use cinder_device::{AttnMask, DType, Error, Result};

use crate::init::Init;
use crate::layers::Linear;
use crate::layers::dropout::dropout;
use crate::var_store::Path;

/// The options of [`scaled_dot_product_attention`], PyTorch's defaults by `Default`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SdpaOptions {
    /// Dropout on the attention weights (applied whenever it is above 0, as PyTorch's
    /// functional form does).
    pub dropout_p: f32,
    /// Key `k` is dropped for query `q` when `k > q`.
    pub is_causal: bool,
    /// The scores' scale; `1 / sqrt(E)` when `None`.
    pub scale: Option<f32>,
    /// Seed and offset of the dropout mask (Cinder's counter-based generator).
    pub seed: u64,
    /// See `seed`.
    pub offset: u64,
}

/// `F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)`:
/// `softmax(q k^T * scale + mask) v` over `q [..., L, E]`, `k [..., S, E]`, `v [..., S, Ev]`
/// (batch dimensions broadcast). `mask` broadcasts to `[..., L, S]`: u32 for a boolean mask
/// (nonzero lets a key take part), f32 for an additive one. Returns `[..., L, Ev]`. Returns
/// `Err` for mismatched shapes, both a mask and `is_causal` (as PyTorch), or a mask of
/// another dtype.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    opts: SdpaOptions,
) -> Result<Tensor> {
    let op = "scaled_dot_product_attention";
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if qs.len() < 2 || ks.len() < 2 || vs.len() < 2 {
        return Err(Error::shapes(op, &qs, &ks));
    }
    let e = qs[qs.len() - 1];
    if ks[ks.len() - 1] != e || ks[ks.len() - 2] != vs[vs.len() - 2] {
        return Err(Error::shapes(op, &ks, &vs));
    }
    if mask.is_some() && opts.is_causal {
        return Err(Error::invalid(
            op,
            "give either a mask or is_causal, not both",
            &qs,
        ));
    }
    let kind = mask.map(|m| mask_kind(op, m, AttnMask::Keep)).transpose()?;
    let scale = opts.scale.unwrap_or(1.0 / (e as f32).sqrt());
    let scores = q.matmul_t(k, false, true)?;
    let w = scores.masked_softmax(mask.zip(kind), opts.is_causal, scale)?;
    let w = dropout(&w, opts.dropout_p, opts.seed, opts.offset)?;
    w.matmul(v)
}

/// How a mask of `m`'s dtype is read: u32 as the given boolean rule, f32 as additive.
fn mask_kind(op: &'static str, m: &Tensor, boolean: AttnMask) -> Result<AttnMask> {
    match m.dtype() {
        DType::U32 => Ok(boolean),
        DType::F32 => Ok(AttnMask::Additive),
        #[allow(unreachable_patterns)]
        _ => Err(Error::invalid(op, "a mask must be u32 or f32", &m.shape())),
    }
}

/// The options of [`MultiheadAttention::new`], PyTorch's defaults by `Default` (but for
/// `embed_dim` and `num_heads`, which have none).
#[derive(Clone, Copy, Debug)]
pub struct MultiheadAttentionConfig {
    /// Dropout on the attention weights in training (default 0).
    pub dropout: f32,
    /// Whether the projections have biases (default true).
    pub bias: bool,
    /// Inputs and output as `[B, L, E]` instead of `[L, B, E]` (default false).
    pub batch_first: bool,
    /// The seed of the dropout masks.
    pub seed: u64,
}

impl Default for MultiheadAttentionConfig {
    fn default() -> Self {
        MultiheadAttentionConfig {
            dropout: 0.0,
            bias: true,
            batch_first: false,
            seed: 0,
        }
    }
}

/// The masks and switches of [`MultiheadAttention::forward`], PyTorch's defaults by
/// `Default`.
#[derive(Clone, Copy, Default)]
pub struct AttentionArgs<'a> {
    /// `[B, S]`: u32 nonzero (or f32 `-inf`) where a key is padding.
    pub key_padding_mask: Option<&'a Tensor>,
    /// `[L, S]` or `[B * heads, L, S]`: u32 nonzero where a key is kept out, or f32 added.
    pub attn_mask: Option<&'a Tensor>,
    /// Return the attention weights (default false here; PyTorch's default is true).
    pub need_weights: bool,
    /// Average the returned weights over the heads (`[B, L, S]`) rather than `[B, heads, L,
    /// S]` (default true in PyTorch: set it when asking for weights).
    pub average_attn_weights: bool,
    /// Apply the causal rule (key `k` kept out of query `q` when `k > q`). PyTorch takes it
    /// as a hint about `attn_mask`; here it is applied, with or without `attn_mask`.
    pub is_causal: bool,
}

/// PyTorch's `nn.MultiheadAttention` (the same `kdim` and `vdim` as `embed_dim`):
/// `in_proj_weight [3E, E]` (xavier uniform), `in_proj_bias [3E]` (zeros), `out_proj`
/// (a Linear, its bias zeros).
pub struct MultiheadAttention {
    /// `[3E, E]`: the query, key and value projections stacked.
    pub in_proj_weight: Tensor,
    /// `[3E]`, with biases.
    pub in_proj_bias: Option<Tensor>,
    /// The output projection.
    pub out_proj: Linear,
    embed_dim: usize,
    num_heads: usize,
    cfg: MultiheadAttentionConfig,
    offset: AtomicU64,
}

impl MultiheadAttention {
    /// Creates the parameters under `path`. Returns `Err` when `embed_dim` is zero or not a
    /// multiple of `num_heads`, the dropout is outside `[0, 1]`, or a name is taken.
    pub fn new(
        path: &Path,
        embed_dim: usize,
        num_heads: usize,
        cfg: MultiheadAttentionConfig,
    ) -> Result<MultiheadAttention> {
        let op = "MultiheadAttention";
        if embed_dim == 0 || num_heads == 0 || !embed_dim.is_multiple_of(num_heads) {
            return Err(Error::invalid(
                op,
                "embed_dim must be a positive multiple of num_heads",
                &[embed_dim, num_heads],
            ));
        }
        if !(0.0..=1.0).contains(&cfg.dropout) {
            return Err(Error::invalid(
                op,
                format!("dropout = {} is outside [0, 1]", cfg.dropout),
                &[],
            ));
        }
        let e = embed_dim;
        let in_proj_weight = path.var(
            "in_proj_weight",
            &[3 * e, e],
            Init::XavierUniform { gain: 1.0 },
        )?;
        let in_proj_bias = cfg
            .bias
            .then(|| path.var("in_proj_bias", &[3 * e], Init::Constant(0.0)))
            .transpose()?;
        let out_proj = Linear::new(&path.pp("out_proj"), e, e, cfg.bias)?;
        if let Some(b) = &out_proj.bias {
            b.set_data(&Tensor::zeros(&b.device(), &[e])?)?;
        }
        Ok(MultiheadAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            embed_dim,
            num_heads,
            cfg,
            offset: AtomicU64::new(0),
        })
    }

    /// The model width `E`.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// The number of heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// Rows `[i*E, (i+1)*E)` of the input projection applied to `x` `[B, T, E]`.
    fn project(&self, x: &Tensor, i: usize) -> Result<Tensor> {
        let e = self.embed_dim;
        let w = self.in_proj_weight.narrow(0, i * e, e)?;
        let b = self
            .in_proj_bias
            .as_ref()
            .map(|b| b.narrow(0, i * e, e))
            .transpose()?;
        x.linear(&w, b.as_ref())
    }

    /// `[B, T, E]` to `[B, heads, T, E / heads]`.
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        let h = self.num_heads;
        x.reshape(&[s[0], s[1], h, self.embed_dim / h])?
            .permute(&[0, 2, 1, 3])
    }

    /// `(output, weights)` of `query` `[L, B, E]`, `key` and `value` `[S, B, E]` (`[B, L, E]`
    /// batch_first; unbatched `[L, E]` too), with the masks of `args`; `train` turns dropout
    /// on. The weights (with `need_weights`) are `[B, L, S]` averaged or `[B, heads, L, S]`
    /// (unbatched: without `B`), after dropout as in PyTorch. Returns `Err` for shapes that
    /// do not match the layer or each other, or a mask of another dtype or shape.
    pub fn forward(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        args: AttentionArgs,
        train: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let op = "MultiheadAttention";
        let e = self.embed_dim;
        let unbatched = query.rank() == 2;
        let to_bf = |x: &Tensor| -> Result<Tensor> {
            let s = x.shape();
            if s.len() != query.rank() || s[s.len() - 1] != e || !(s.len() == 2 || s.len() == 3) {
                return Err(Error::shapes(op, &s, &[e]));
            }
            if unbatched {
                x.reshape(&[1, s[0], s[1]])
            } else if self.cfg.batch_first {
                Ok(x.clone())
            } else {
                x.transpose(0, 1)
            }
        };
        let (q_in, k_in, v_in) = (to_bf(query)?, to_bf(key)?, to_bf(value)?);
        let (b, l, s) = (q_in.shape()[0], q_in.shape()[1], k_in.shape()[1]);
        if k_in.shape()[0] != b || v_in.shape()[..2] != k_in.shape()[..2] {
            return Err(Error::shapes(op, &k_in.shape(), &v_in.shape()));
        }
        let hd = e / self.num_heads;
        // Three products on row blocks of in_proj_weight: splitting one [.., 3E] product
        // instead would pad each part's gradient back to the whole in backward.
        let q = self.heads(&self.project(&q_in, 0)?)?;
        let k = self.heads(&self.project(&k_in, 1)?)?;
        let v = self.heads(&self.project(&v_in, 2)?)?;
        let mask = self.merged_mask(args, b, l, s, unbatched)?;
        let scores = q.matmul_t(&k, false, true)?;
        let w = scores.masked_softmax(
            mask.as_ref().map(|(m, kind)| (m, *kind)),
            args.is_causal,
            1.0 / (hd as f32).sqrt(),
        )?;
        let w = if train && self.cfg.dropout > 0.0 {
            let n = w.numel() as u64;
            let off = self.offset.fetch_add(n.max(1), Ordering::Relaxed);
            dropout(&w, self.cfg.dropout, self.cfg.seed, off)?
        } else {
            w
        };
        let y = w.matmul(&v)?.permute(&[0, 2, 1, 3])?.reshape(&[b, l, e])?;
        let y = crate::module::Module::forward(&self.out_proj, &y)?;
        let y = if unbatched {
            y.reshape(&[l, e])?
        } else if self.cfg.batch_first {
            y
        } else {
            y.transpose(0, 1)?
        };
        let weights = args
            .need_weights
            .then(|| -> Result<Tensor> {
                let w = if args.average_attn_weights {
                    w.mean_axis(1, false)?
                } else {
                    w
                };
                if unbatched {
                    let mut s = w.shape();
                    s.remove(0);
                    w.reshape(&s)
                } else {
                    Ok(w)
                }
            })
            .transpose()?;
        Ok((y, weights))
    }

    /// One mask for the scores `[B, heads, L, S]` from `attn_mask` and `key_padding_mask`:
    /// a lone boolean mask is read as it is, anything else becomes one additive mask.
    fn merged_mask(
        &self,
        args: AttentionArgs,
        b: usize,
        l: usize,
        s: usize,
        unbatched: bool,
    ) -> Result<Option<(Tensor, AttnMask)>> {
        let op = "MultiheadAttention";
        let h = self.num_heads;
        let attn = args
            .attn_mask
            .map(|m| -> Result<Tensor> {
                let ms = m.shape();
                if ms == [l, s] {
                    Ok(m.clone())
                } else if ms == [b * h, l, s] {
                    m.reshape(&[b, h, l, s])
                } else {
                    Err(Error::shapes(op, &ms, &[l, s]))
                }
            })
            .transpose()?;
        let pad = args
            .key_padding_mask
            .map(|m| -> Result<Tensor> {
                let ms = m.shape();
                let want: &[usize] = if unbatched { &[s] } else { &[b, s] };
                if ms != want {
                    return Err(Error::shapes(op, &ms, want));
                }
                m.reshape(&[b, 1, 1, s])
            })
            .transpose()?;
        let additive = |m: &Tensor| -> Result<Tensor> {
            match mask_kind(op, m, AttnMask::Drop)? {
                AttnMask::Additive => Ok(m.clone()),
                _ => {
                    let cond = m.to_dtype(DType::F32)?;
                    let d = m.device();
                    Tensor::where_cond(
                        &cond,
                        &Tensor::full(&d, &[], f32::NEG_INFINITY)?,
                        &Tensor::zeros(&d, &[])?,
                    )
                }
            }
        };
        Ok(match (attn, pad) {
            (None, None) => None,
            (Some(m), None) | (None, Some(m)) => {
                let kind = mask_kind(op, &m, AttnMask::Drop)?;
                Some((m, kind))
            }
            (Some(a), Some(p)) => Some((additive(&a)?.add(&additive(&p)?)?, AttnMask::Additive)),
        })
    }
}
