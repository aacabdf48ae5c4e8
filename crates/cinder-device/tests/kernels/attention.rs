//! Attention's masked softmax against a CPU loop: no mask, additive, keep and drop masks of
//! the scores' trailing shape and of a key-padding shape read in place, a scattered
//! broadcast that is copied, the causal rule, fully masked rows (zeros), -inf entries,
//! NaN, and the masks it refuses.

use super::common::*;
use cinder_device::{AttnMask, DeviceTensor};

/// Whether key `k` of the row with multi-index `idx` takes part, and what is added to it.
type MaskAt<'a> = &'a dyn Fn(&[usize], usize) -> (bool, f32);

/// The reference: `shape` the scores' shape, `keep_add` the mask.
fn cpu(x: &[f32], shape: &[usize], scale: f32, causal: bool, keep_add: MaskAt) -> Vec<f32> {
    let len = shape[shape.len() - 1];
    let lq = shape[shape.len() - 2];
    let rows = x.len() / len;
    let r = shape.len() - 1;
    let mut out = vec![0f32; x.len()];
    for row in 0..rows {
        // the row's multi-index
        let mut idx = vec![0usize; r];
        let mut rem = row;
        for d in (0..r).rev() {
            idx[d] = rem % shape[d];
            rem /= shape[d];
        }
        let q = row % lq;
        let vals: Vec<Option<f32>> = (0..len)
            .map(|k| {
                let (keep, add) = keep_add(&idx, k);
                let v = x[row * len + k] * scale + add;
                (keep && !(causal && k > q) && v != f32::NEG_INFINITY).then_some(v)
            })
            .collect();
        let m = vals
            .iter()
            .flatten()
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let s: f32 = vals.iter().flatten().map(|v| (v - m).exp()).sum();
        for k in 0..len {
            out[row * len + k] = vals[k].map_or(0.0, |v| (v - m).exp() / s);
        }
    }
    out
}

fn u32_tensor(v: &[u32], shape: &[usize]) -> DeviceTensor {
    DeviceTensor::from_slice(&dev(), v, shape).unwrap()
}

#[test]
fn masked_softmax_matches_cpu() {
    let mut r = rng(90);
    let shape = [2usize, 3, 4, 6];
    let (x, xv) = rand_tensor(&mut r, &shape);
    for causal in [false, true] {
        // no mask
        let got = read(&x.masked_softmax(None, causal, 0.7).unwrap());
        assert_close(
            &got,
            &cpu(&xv, &shape, 0.7, causal, &|_, _| (true, 0.0)),
            1e-6,
            1e-5,
        );
        // additive [L, S] with a -inf
        let mut add = uniform(&mut r, 4 * 6, -1.0, 1.0);
        add[7] = f32::NEG_INFINITY;
        let m = tensor(&add, &[4, 6]);
        let got = read(
            &x.masked_softmax(Some((&m, AttnMask::Additive)), causal, 0.5)
                .unwrap(),
        );
        let want = cpu(&xv, &shape, 0.5, causal, &|i, k| (true, add[i[2] * 6 + k]));
        assert_close(&got, &want, 1e-6, 1e-5);
        // keep [L, S], with row 1 fully dropped
        let keep: Vec<u32> = (0..24)
            .map(|i| ((i * 7 % 5 != 0) && i / 6 != 1) as u32)
            .collect();
        let m = u32_tensor(&keep, &[4, 6]);
        let got = read(
            &x.masked_softmax(Some((&m, AttnMask::Keep)), causal, 1.0)
                .unwrap(),
        );
        let want = cpu(&xv, &shape, 1.0, causal, &|i, k| {
            (keep[i[2] * 6 + k] != 0, 0.0)
        });
        assert_close(&got, &want, 1e-6, 1e-5);
        assert!(
            got[6..12].iter().all(|&v| v == 0.0),
            "a fully masked row is zeros"
        );
        // drop, key-padding shape [B, 1, 1, S], read in place
        let pad: Vec<u32> = (0..12).map(|i| (i % 6 >= 4 && i / 6 == 1) as u32).collect();
        let m = u32_tensor(&pad, &[2, 1, 1, 6]);
        let got = read(
            &x.masked_softmax(Some((&m, AttnMask::Drop)), causal, 1.0)
                .unwrap(),
        );
        let want = cpu(&xv, &shape, 1.0, causal, &|i, k| {
            (pad[i[0] * 6 + k] == 0, 0.0)
        });
        assert_close(&got, &want, 1e-6, 1e-5);
        // [B, 1, L, S]: the kept row dimensions (0 and 2) are not consecutive, so the mask
        // is copied to the scores' shape first
        let add2 = uniform(&mut r, 2 * 4 * 6, -1.0, 1.0);
        let m = tensor(&add2, &[2, 1, 4, 6]);
        let got = read(
            &x.masked_softmax(Some((&m, AttnMask::Additive)), causal, 1.0)
                .unwrap(),
        );
        let want = cpu(&xv, &shape, 1.0, causal, &|i, k| {
            (true, add2[(i[0] * 4 + i[2]) * 6 + k])
        });
        assert_close(&got, &want, 1e-6, 1e-5);
        // the same as u32 keep (the copy path for u32)
        let keep2: Vec<u32> = add2.iter().map(|&v| (v > -0.5) as u32).collect();
        let m = u32_tensor(&keep2, &[2, 1, 4, 6]);
        let got = read(
            &x.masked_softmax(Some((&m, AttnMask::Keep)), causal, 1.0)
                .unwrap(),
        );
        let want = cpu(&xv, &shape, 1.0, causal, &|i, k| {
            (keep2[(i[0] * 4 + i[2]) * 6 + k] != 0, 0.0)
        });
        assert_close(&got, &want, 1e-6, 1e-5);
    }
}

#[test]
fn masked_softmax_propagates_nan_and_refuses_bad_masks() {
    let mut v = vec![0.5f32; 2 * 3];
    v[1] = f32::NAN;
    let x = tensor(&v, &[2, 3]);
    let y = read(&x.masked_softmax(None, false, 1.0).unwrap());
    assert!(y[..3].iter().all(|v| v.is_nan()));
    assert!((y[3] - 1.0 / 3.0).abs() < 1e-6);
    let f = tensor(&[0.0; 3], &[3]);
    let u = u32_tensor(&[1; 3], &[3]);
    assert!(
        x.masked_softmax(Some((&f, AttnMask::Keep)), false, 1.0)
            .is_err()
    );
    assert!(
        x.masked_softmax(Some((&u, AttnMask::Additive)), false, 1.0)
            .is_err()
    );
    let wrong = tensor(&[0.0; 4], &[4]);
    assert!(
        x.masked_softmax(Some((&wrong, AttnMask::Additive)), false, 1.0)
            .is_err()
    );
    let wrong = tensor(&[0.0; 9], &[3, 3]);
    assert!(
        x.masked_softmax(Some((&wrong, AttnMask::Additive)), false, 1.0)
            .is_err()
    );
    assert!(
        tensor(&[1.0], &[])
            .masked_softmax(None, false, 1.0)
            .is_err()
    );
}
