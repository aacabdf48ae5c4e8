//! Attention against `tests/fixtures/attention.safetensors`: F.scaled_dot_product_attention
//! (masks, causal, scale, broadcast batches), nn.MultiheadAttention, nn.TransformerEncoderLayer
//! and nn.TransformerEncoder loading PyTorch's `state_dict` by name, and the sinusoidal
//! positional encoding.

use cinder::nn::{
    Activation, AttentionArgs, EncoderMasks, MultiheadAttention, MultiheadAttentionConfig,
    SdpaOptions, TransformerEncoder, TransformerEncoderLayer, TransformerEncoderLayerConfig,
    VarStore, scaled_dot_product_attention, sinusoidal_positions,
};
use cinder::{DType, Result, Tensor};

use crate::harness::{Case, Produced, dev, run_family, unknown};

/// A mask stored as 0/1 integers, as u32; a float mask as it is.
fn mask(case: &Case, key: &str) -> Result<Option<Tensor>> {
    if !case.has(key) {
        return Ok(None);
    }
    let t = case.tensor(key)?;
    Ok(Some(if t.dtype() == DType::F32 {
        t
    } else {
        t.to_dtype(DType::U32)?
    }))
}

fn sdpa_case(case: &Case) -> Result<Produced> {
    case.op_outputs(|x| {
        let m = if case.has("mask") {
            Some(if case.bool_or("bool_mask", false)? {
                x[3].to_dtype(DType::U32)?
            } else {
                x[3].clone()
            })
        } else {
            None
        };
        let opts = SdpaOptions {
            is_causal: case.bool_or("is_causal", false)?,
            scale: case
                .args
                .get("scale")
                .map(|_| case.f32("scale"))
                .transpose()?,
            ..Default::default()
        };
        Ok(vec![scaled_dot_product_attention(
            &x[0],
            &x[1],
            &x[2],
            m.as_ref(),
            opts,
        )?])
    })
}

fn mha_case(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let cfg = MultiheadAttentionConfig {
        bias: case.bool_or("bias", true)?,
        batch_first: case.bool_or("batch_first", false)?,
        ..Default::default()
    };
    let m = MultiheadAttention::new(
        &vs.pp("m"),
        case.usize("embed_dim")?,
        case.usize("num_heads")?,
        cfg,
    )?;
    case.load_state(&vs)?;
    let q = case.param("q")?;
    let cross = case.bool_or("cross", false)?;
    let (k, v) = if cross {
        (case.param("k")?, case.param("v")?)
    } else {
        (q.clone(), q.clone())
    };
    let kpm = mask(case, "key_padding_mask")?;
    let am = mask(case, "attn_mask")?;
    let args = AttentionArgs {
        key_padding_mask: kpm.as_ref(),
        attn_mask: am.as_ref(),
        need_weights: case.bool_or("need_weights", false)?,
        average_attn_weights: case.bool_or("average_attn_weights", true)?,
        is_causal: case.bool_or("is_causal", false)?,
    };
    let (y, w) = m.forward(&q, &k, &v, args, true)?;
    let mut loss = y.mul(&case.tensor("cot")?)?.sum_all()?;
    if let Some(w) = &w {
        loss = loss.add(&w.mul(&case.tensor("cot_w")?)?.sum_all()?)?;
    }
    loss.backward()?;
    let mut got = vec![
        ("expect.out".to_string(), y),
        ("expect.grad.q".to_string(), q.grad().expect("q's gradient")),
    ];
    if let Some(w) = w {
        got.push(("expect.weights".to_string(), w));
    }
    if cross {
        got.push(("expect.grad.k".into(), k.grad().expect("k's gradient")));
        got.push(("expect.grad.v".into(), v.grad().expect("v's gradient")));
    }
    got.extend(case.param_grads(&vs, "m."));
    Ok(got)
}

fn encoder_case(case: &Case) -> Result<Produced> {
    let vs = VarStore::new(&dev(), 0);
    let mut cfg = TransformerEncoderLayerConfig::new(case.usize("d_model")?, case.usize("nhead")?);
    cfg.dim_feedforward = case.usize("dim_feedforward")?;
    cfg.dropout = 0.0;
    cfg.activation = match case.str("activation")? {
        "gelu" => Activation::Gelu,
        _ => Activation::Relu,
    };
    cfg.norm_first = case.bool_or("norm_first", false)?;
    cfg.batch_first = case.bool_or("batch_first", false)?;
    let kpm = mask(case, "src_key_padding_mask")?;
    let masks = EncoderMasks {
        mask: None,
        src_key_padding_mask: kpm.as_ref(),
        is_causal: case.bool_or("causal", false)?,
    };
    let x = case.param("x")?;
    let y = if case.op == "TransformerEncoder" {
        let m = TransformerEncoder::new(
            &vs.pp("m"),
            cfg,
            case.usize("num_layers")?,
            case.bool_or("final_norm", false)?,
        )?;
        case.load_state(&vs)?;
        m.forward(&x, masks, true)?
    } else {
        let m = TransformerEncoderLayer::new(&vs.pp("m"), cfg)?;
        case.load_state(&vs)?;
        m.forward(&x, masks, true)?
    };
    y.mul(&case.tensor("cot")?)?.sum_all()?.backward()?;
    let mut got = vec![
        ("expect.out".to_string(), y),
        ("expect.grad.x".to_string(), x.grad().expect("x's gradient")),
    ];
    got.extend(case.param_grads(&vs, "m."));
    Ok(got)
}

fn run(case: &Case) -> Result<Produced> {
    match case.op.as_str() {
        "sdpa" => sdpa_case(case),
        "MultiheadAttention" => mha_case(case),
        "TransformerEncoderLayer" | "TransformerEncoder" => encoder_case(case),
        "sinusoidal_positions" => Ok(vec![(
            "expect.pe".to_string(),
            sinusoidal_positions(&dev(), case.usize("len")?, case.usize("dim")?)?,
        )]),
        _ => Err(unknown(case)),
    }
}

#[test]
fn attention() {
    run_family("attention", run);
}
