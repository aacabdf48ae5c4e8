//! Attention's backward rules against finite differences: the masked softmax (first and
//! second order), scaled dot-product attention with a mask, multi-head attention with key
//! padding, and a Transformer encoder layer; bad input as `Err`.

use cinder_autograd::{GradcheckOptions, Tensor, gradcheck};
use cinder_device::{AttnMask, DType};
use cinder_nn::{
    AttentionArgs, EncoderMasks, MultiheadAttention, MultiheadAttentionConfig, SdpaOptions,
    TransformerEncoderLayer, TransformerEncoderLayerConfig, VarStore, scaled_dot_product_attention,
};

use crate::common::{dev, t, tu, uniform};

fn p(seed: u64, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    t(&uniform(seed, n, -1.0, 1.0), shape)
        .requires_grad_(true)
        .unwrap()
}

#[test]
fn masked_softmax_gradients() {
    let x = p(1, &[2, 3, 4]);
    let keep = tu(&[1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0], &[3, 4]);
    for causal in [false, true] {
        let f = |v: &[Tensor]| v[0].masked_softmax(Some((&keep, AttnMask::Keep)), causal, 0.8);
        gradcheck(std::slice::from_ref(&x), f, &Default::default()).unwrap();
        // second order: the gradient of sum(g * y) is itself checked
        let g = t(&uniform(2, 24, -1.0, 1.0), &[2, 3, 4]);
        let f2 = |v: &[Tensor]| {
            let y = v[0].masked_softmax(None, causal, 0.8)?.mul(&g)?.sum_all()?;
            Ok(cinder_autograd::grad(&[&y], &[&v[0]], true)?.remove(0))
        };
        gradcheck(std::slice::from_ref(&x), f2, &Default::default()).unwrap();
    }
}

#[test]
fn attention_gradients() {
    let (q, k, v) = (
        p(3, &[2, 2, 3, 4]),
        p(4, &[2, 2, 5, 4]),
        p(5, &[2, 2, 5, 3]),
    );
    let add = t(&uniform(6, 15, -1.0, 1.0), &[3, 5]);
    gradcheck(
        &[q.clone(), k.clone(), v.clone()],
        |x| scaled_dot_product_attention(&x[0], &x[1], &x[2], Some(&add), SdpaOptions::default()),
        &Default::default(),
    )
    .unwrap();
    let vs = VarStore::new(&dev(), 7);
    let cfg = MultiheadAttentionConfig {
        batch_first: true,
        ..Default::default()
    };
    let mha = MultiheadAttention::new(&vs.pp("mha"), 4, 2, cfg).unwrap();
    let pad = tu(&[0, 0, 0, 1, 0, 0, 0, 0], &[2, 4]);
    let x = p(8, &[2, 4, 4]);
    let args = AttentionArgs {
        key_padding_mask: Some(&pad),
        ..Default::default()
    };
    gradcheck(
        std::slice::from_ref(&x),
        |v| Ok(mha.forward(&v[0], &v[0], &v[0], args, false)?.0),
        &Default::default(),
    )
    .unwrap();
    let mut lc = TransformerEncoderLayerConfig::new(4, 2);
    lc.dim_feedforward = 6;
    lc.dropout = 0.0;
    lc.batch_first = true;
    lc.norm_first = true;
    let layer = TransformerEncoderLayer::new(&vs.pp("enc"), lc).unwrap();
    let opts = GradcheckOptions {
        atol: 5e-3,
        rtol: 3e-2,
        ..Default::default()
    };
    let masks = EncoderMasks {
        src_key_padding_mask: Some(&pad),
        is_causal: true,
        ..Default::default()
    };
    gradcheck(
        std::slice::from_ref(&x),
        |v| layer.forward(&v[0], masks, true),
        &opts,
    )
    .unwrap();
}

#[test]
fn bad_attention_input_is_refused() {
    let (q, k, v) = (p(9, &[2, 3, 4]), p(10, &[2, 5, 4]), p(11, &[2, 5, 3]));
    let m = tu(&[1; 15], &[3, 5]);
    let causal = SdpaOptions {
        is_causal: true,
        ..Default::default()
    };
    assert!(scaled_dot_product_attention(&q, &k, &v, Some(&m), causal).is_err());
    assert!(scaled_dot_product_attention(&q, &v, &v, None, SdpaOptions::default()).is_err());
    let wrong = tu(&[1; 12], &[3, 4]);
    assert!(
        scaled_dot_product_attention(&q, &k, &v, Some(&wrong), SdpaOptions::default()).is_err()
    );
    let vs = VarStore::new(&dev(), 12);
    assert!(MultiheadAttention::new(&vs.pp("a"), 6, 4, Default::default()).is_err());
    let mha = MultiheadAttention::new(&vs.pp("b"), 4, 2, Default::default()).unwrap();
    let x = p(13, &[3, 2, 4]);
    let bad_pad = tu(&[0; 6], &[3, 2]); // [L, B] instead of [B, S]
    let args = AttentionArgs {
        key_padding_mask: Some(&bad_pad),
        ..Default::default()
    };
    assert!(mha.forward(&x, &x, &x, args, false).is_err());
    let x5 = p(14, &[3, 2, 5]);
    assert!(
        mha.forward(&x5, &x5, &x5, AttentionArgs::default(), false)
            .is_err()
    );
    let ok = tu(&[0; 6], &[2, 3]);
    let args = AttentionArgs {
        key_padding_mask: Some(&ok),
        need_weights: true,
        average_attn_weights: true,
        ..Default::default()
    };
    let (y, w) = mha.forward(&x, &x, &x, args, false).unwrap();
    assert_eq!(y.shape(), vec![3, 2, 4]);
    let w = w.unwrap();
    assert_eq!(w.shape(), vec![2, 3, 3]);
    assert_eq!(w.dtype(), DType::F32);
}
