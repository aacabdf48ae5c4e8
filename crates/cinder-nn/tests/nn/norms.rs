//! LayerNorm, GroupNorm, RMSNorm and BatchNorm's counter, momentum=None and
//! track_running_stats: forward against CPU references in f64, gradients against finite
//! differences (first and second order), names and defaults, misuse errors, and a training
//! step that neither uploads nor reads back.

use cinder_autograd::{GradcheckOptions, Tensor, grad, gradcheck};
use cinder_device::{DType, Device, Error};
use cinder_nn::*;

use crate::common::*;

fn store(seed: u64) -> VarStore {
    VarStore::new(&dev(), seed)
}

fn names(vs: &VarStore) -> Vec<String> {
    vs.state().into_iter().map(|(n, _)| n).collect()
}

/// Normalizes each row of `rows` (of length `inner`) with its mean and `denom(row)`.
fn normalize_rows(x: &[f32], inner: usize, denom: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    x.chunks(inner)
        .flat_map(|r| {
            let r: Vec<f64> = r.iter().map(|&v| v as f64).collect();
            let d = denom(&r);
            r.into_iter().map(move |v| v / d).collect::<Vec<_>>()
        })
        .collect()
}

fn centered_rows(x: &[f32], inner: usize, eps: f64) -> Vec<f64> {
    x.chunks(inner)
        .flat_map(|r| {
            let n = r.len() as f64;
            let m = r.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = r.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
            r.iter()
                .map(move |&v| (v as f64 - m) / (var + eps).sqrt())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

#[test]
fn layer_norm_over_several_trailing_dims_with_affine() {
    let vs = store(1);
    let ln = LayerNorm::new(&vs.pp("ln"), &[3, 4], LayerNormConfig::default()).unwrap();
    assert_eq!(names(&vs), ["ln.weight", "ln.bias"]);
    assert_eq!(read(ln.weight.as_ref().unwrap()), vec![1.0; 12]);
    assert_eq!(read(ln.bias.as_ref().unwrap()), vec![0.0; 12]);
    let w = uniform(2, 12, 0.5, 1.5);
    let b = uniform(3, 12, -1.0, 1.0);
    ln.weight
        .as_ref()
        .unwrap()
        .set_data(&t(&w, &[3, 4]))
        .unwrap();
    ln.bias.as_ref().unwrap().set_data(&t(&b, &[3, 4])).unwrap();
    let x = uniform(4, 2 * 5 * 12, -3.0, 5.0);
    let y = read(&ln.forward(&t(&x, &[2, 5, 3, 4])).unwrap());
    let want: Vec<f32> = centered_rows(&x, 12, 1e-5)
        .iter()
        .enumerate()
        .map(|(i, v)| (v * w[i % 12] as f64 + b[i % 12] as f64) as f32)
        .collect();
    assert_close(&y, &want, 2e-5, 1e-4);

    // a large mean and a small spread: no cancellation
    let x: Vec<f32> = uniform(5, 32, -0.05, 0.05)
        .iter()
        .map(|v| v + 1000.0)
        .collect();
    let y = read(&layer_norm(&t(&x, &[2, 16]), &[16], None, None, 1e-5).unwrap());
    assert_close(&y, &to_f32(&centered_rows(&x, 16, 1e-5)), 2e-2, 1e-2);
}

#[test]
fn layer_norm_flags_and_errors() {
    let vs = store(2);
    let cfg = LayerNormConfig {
        bias: false,
        ..Default::default()
    };
    let ln = LayerNorm::new(&vs.pp("a"), &[5], cfg).unwrap();
    assert!(ln.bias.is_none());
    let cfg = LayerNormConfig {
        elementwise_affine: false,
        ..Default::default()
    };
    let plain = LayerNorm::new(&vs.pp("b"), &[5], cfg).unwrap();
    assert!(plain.weight.is_none() && plain.bias.is_none());
    assert_eq!(names(&vs), ["a.weight"], "bias=False and no affine");
    assert_eq!(plain.normalized_shape(), &[5]);

    let x = t(&uniform(6, 10, -1.0, 1.0), &[2, 5]);
    for bad in [&[4][..], &[2, 5, 1], &[]] {
        assert!(layer_norm(&x, bad, None, None, 1e-5).is_err(), "{bad:?}");
    }
    let w4 = t(&[1.0; 4], &[4]);
    assert!(matches!(
        layer_norm(&x, &[5], Some(&w4), None, 1e-5),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(layer_norm(&x, &[5], None, None, -1.0).is_err());
    assert!(layer_norm(&x, &[5], None, None, f32::NAN).is_err());
    assert!(plain.forward(&tu(&[1; 5], &[5])).is_err(), "u32 input");
    assert!(LayerNorm::new(&vs.pp("c"), &[0], Default::default()).is_err());
    assert!(
        LayerNorm::new(&vs.pp("a"), &[5], Default::default()).is_err(),
        "taken"
    );
}

#[test]
fn group_norm_against_cpu_reference() {
    let vs = store(3);
    let gn = GroupNorm::new(&vs.pp("gn"), 2, 6, GroupNormConfig::default()).unwrap();
    assert_eq!(names(&vs), ["gn.weight", "gn.bias"]);
    assert_eq!(gn.num_groups(), 2);
    let (n, c, hw) = (3, 6, 5);
    let w = uniform(7, c, 0.5, 1.5);
    let b = uniform(8, c, -1.0, 1.0);
    gn.weight.as_ref().unwrap().set_data(&t(&w, &[c])).unwrap();
    gn.bias.as_ref().unwrap().set_data(&t(&b, &[c])).unwrap();
    let x = uniform(9, n * c * hw, -2.0, 4.0);
    let y = read(&gn.forward(&t(&x, &[n, c, hw])).unwrap());
    // each group is 3 consecutive channels of 5 values: a contiguous run of 15
    let want: Vec<f32> = centered_rows(&x, 3 * hw, 1e-5)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / hw) % c;
            (v * w[ch] as f64 + b[ch] as f64) as f32
        })
        .collect();
    assert_close(&y, &want, 2e-5, 1e-4);
    // rank 4 and rank 2 inputs
    let x4 = t(&uniform(10, 2 * 6 * 2 * 2, -1.0, 1.0), &[2, 6, 2, 2]);
    assert_eq!(gn.forward(&x4).unwrap().shape(), vec![2, 6, 2, 2]);
    let y2 = read(&group_norm(&t(&x[..12], &[2, 6]), 3, None, None, 1e-5).unwrap());
    assert_close(&y2, &to_f32(&centered_rows(&x[..12], 2, 1e-5)), 1e-4, 1e-4);

    assert!(GroupNorm::new(&vs.pp("bad"), 4, 6, Default::default()).is_err());
    assert!(GroupNorm::new(&vs.pp("bad"), 0, 6, Default::default()).is_err());
    assert!(gn.forward(&t(&[0.0; 8], &[2, 4])).is_err(), "channels");
    assert!(
        group_norm(&t(&[0.0; 6], &[6]), 1, None, None, 1e-5).is_err(),
        "rank 1"
    );
}

#[test]
fn rms_norm_default_eps_is_f32_epsilon() {
    let vs = store(4);
    let rms = RmsNorm::new(&vs.pp("rms"), &[2, 3], RmsNormConfig::default()).unwrap();
    assert_eq!(names(&vs), ["rms.weight"], "RMSNorm has no bias");
    let w = uniform(11, 6, 0.5, 1.5);
    rms.weight
        .as_ref()
        .unwrap()
        .set_data(&t(&w, &[2, 3]))
        .unwrap();
    let rms_ref = |x: &[f32], eps: f64| -> Vec<f32> {
        normalize_rows(x, 6, |r| {
            (r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64 + eps).sqrt()
        })
        .iter()
        .enumerate()
        .map(|(i, v)| (v * w[i % 6] as f64) as f32)
        .collect()
    };
    let x = uniform(12, 4 * 6, -2.0, 2.0);
    let y = read(&rms.forward(&t(&x, &[4, 2, 3])).unwrap());
    assert_close(&y, &rms_ref(&x, f32::EPSILON as f64), 1e-5, 1e-4);
    // tiny inputs, where eps matters: mean square 1e-8 against eps 1.19e-7
    let tiny: Vec<f32> = x.iter().map(|v| v * 1e-4).collect();
    let y = read(&rms.forward(&t(&tiny, &[4, 2, 3])).unwrap());
    assert_close(&y, &rms_ref(&tiny, f32::EPSILON as f64), 1e-6, 1e-3);
    let far = rms_ref(&tiny, 1e-5);
    assert!(y.iter().zip(&far).any(|(a, b)| (a - b).abs() > 1e-2));

    let cfg = RmsNormConfig {
        eps: Some(1e-2),
        elementwise_affine: false,
    };
    let plain = RmsNorm::new(&vs.pp("plain"), &[6], cfg).unwrap();
    assert!(plain.weight.is_none());
    let y = read(&plain.forward(&t(&x, &[4, 6])).unwrap());
    let want = normalize_rows(&x, 6, |r| {
        (r.iter().map(|v| v * v).sum::<f64>() / 6.0 + 1e-2).sqrt()
    });
    assert_close(&y, &to_f32(&want), 1e-5, 1e-4);
    assert!(rms.forward(&t(&x, &[4, 6])).is_err(), "trailing shape");
    assert!(rms_norm(&t(&x, &[4, 6]), &[6], None, Some(-1.0)).is_err());
}

/// First-order gradchecks of the functional forms in input, weight and bias, and
/// second-order ones: the gradient of `sum(y * v)` with respect to the input (built with
/// `create_graph`) checked against finite differences of itself.
#[test]
fn norms_backward_first_and_second_order() {
    let opts = GradcheckOptions::default();
    let x = t(&uniform(13, 2 * 3 * 4, -1.0, 2.0), &[2, 3, 4]);
    let w = t(&uniform(14, 12, 0.5, 1.5), &[3, 4]);
    let b = t(&uniform(15, 12, -0.5, 0.5), &[3, 4]);
    gradcheck(
        &[x.clone(), w.clone(), b.clone()],
        |v| layer_norm(&v[0], &[3, 4], Some(&v[1]), Some(&v[2]), 1e-5),
        &opts,
    )
    .unwrap();
    let wg = t(&uniform(16, 3, 0.5, 1.5), &[3]);
    let bg = t(&uniform(17, 3, -0.5, 0.5), &[3]);
    gradcheck(
        &[x.clone(), wg.clone(), bg],
        |v| group_norm(&v[0], 3, Some(&v[1]), Some(&v[2]), 1e-5),
        &opts,
    )
    .unwrap();
    let w4 = t(&uniform(18, 4, 0.5, 1.5), &[4]);
    gradcheck(
        &[x.clone(), w4.clone()],
        |v| rms_norm(&v[0], &[4], Some(&v[1]), None),
        &opts,
    )
    .unwrap();

    let proj = t(&uniform(19, 24, -1.0, 1.0), &[2, 3, 4]);
    type Norm = fn(&Tensor, &Tensor) -> cinder_device::Result<Tensor>;
    let cases: [(&str, Norm, Tensor); 3] = [
        (
            "layer_norm",
            |x, w| layer_norm(x, &[4], Some(w), None, 1e-5),
            w4.clone(),
        ),
        (
            "group_norm",
            |x, w| group_norm(x, 1, Some(w), None, 1e-5),
            wg,
        ),
        (
            "rms_norm",
            |x, w| rms_norm(x, &[4], Some(w), Some(1e-5)),
            w4,
        ),
    ];
    for (name, f, wt) in cases {
        let second = |v: &[Tensor]| {
            let y = f(&v[0], &v[1])?.mul(&proj)?.sum_all()?;
            let g = grad(&[&y], &[&v[0], &v[1]], true)?;
            g[0].add(&g[0].mul(&g[0])?)?
                .sum_all()?
                .add(&g[1].square()?.sum_all()?)
        };
        gradcheck(
            &[x.clone(), wt],
            second,
            &GradcheckOptions {
                eps: 5e-3,
                atol: 5e-3,
                rtol: 2e-2,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn col_stats(x: &[f32], c: usize, ch: usize) -> (f64, f64, usize) {
    let v: Vec<f64> = x
        .iter()
        .enumerate()
        .filter(|(i, _)| i % c == ch)
        .map(|(_, &v)| v as f64)
        .collect();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
    (m, var, v.len())
}

#[test]
fn batchnorm_counts_batches_and_momentum_none_is_the_cumulative_average() {
    let vs = store(20);
    let cfg = BatchNormConfig {
        momentum: None,
        ..Default::default()
    };
    let bn = BatchNorm::new_1d(&vs.pp("bn"), 2, cfg).unwrap();
    let nbt = bn.num_batches_tracked.clone().unwrap();
    assert_eq!(nbt.dtype(), DType::U32);
    assert_eq!(nbt.shape(), Vec::<usize>::new());
    assert_eq!(nbt.to_vec::<u32>().unwrap(), [0]);
    let batches: Vec<Vec<f32>> = (0..3).map(|i| uniform(21 + i, 5 * 2, -2.0, 3.0)).collect();
    // running = mean of the batch statistics so far (1/n weights), from (0, 1)
    let (mut rm, mut rv) = ([0f64; 2], [1f64; 2]);
    for (k, x) in batches.iter().enumerate() {
        bn.forward_t(&t(x, &[5, 2]), true).unwrap();
        let f = 1.0 / (k + 1) as f64;
        for ch in 0..2 {
            let (m, var, n) = col_stats(x, 2, ch);
            rm[ch] = (1.0 - f) * rm[ch] + f * m;
            rv[ch] = (1.0 - f) * rv[ch] + f * var * n as f64 / (n - 1) as f64;
        }
        assert_eq!(nbt.to_vec::<u32>().unwrap(), [k as u32 + 1]);
    }
    let rm32: Vec<f32> = rm.iter().map(|&v| v as f32).collect();
    let rv32: Vec<f32> = rv.iter().map(|&v| v as f32).collect();
    assert_close(&read(bn.running_mean.as_ref().unwrap()), &rm32, 1e-5, 1e-5);
    assert_close(&read(bn.running_var.as_ref().unwrap()), &rv32, 1e-5, 1e-5);
    // evaluation counts nothing and changes nothing
    bn.forward_t(&t(&batches[0], &[5, 2]), false).unwrap();
    assert_eq!(nbt.to_vec::<u32>().unwrap(), [3]);
    assert_close(&read(bn.running_mean.as_ref().unwrap()), &rm32, 1e-5, 1e-5);

    // with a momentum the counter counts too
    let bn2 = BatchNorm::new_2d(&vs.pp("bn2"), 2, Default::default()).unwrap();
    for _ in 0..4 {
        bn2.forward_t(&t(&uniform(25, 16, -1.0, 1.0), &[2, 2, 2, 2]), true)
            .unwrap();
    }
    assert_eq!(
        bn2.num_batches_tracked
            .as_ref()
            .unwrap()
            .to_vec::<u32>()
            .unwrap(),
        [4]
    );
    assert!(
        BatchNorm::new_1d(
            &vs.pp("bad"),
            2,
            BatchNormConfig {
                momentum: Some(1.5),
                ..Default::default()
            }
        )
        .is_err()
    );
}

#[test]
fn batchnorm_without_running_stats_uses_batch_statistics_in_eval() {
    let vs = store(26);
    let cfg = BatchNormConfig {
        track_running_stats: false,
        ..Default::default()
    };
    let bn = BatchNorm::new_1d(&vs.pp("bn"), 3, cfg).unwrap();
    assert_eq!(names(&vs), ["bn.weight", "bn.bias"], "no buffers");
    assert!(bn.running_mean.is_none() && bn.num_batches_tracked.is_none());
    let x = uniform(27, 4 * 3, -1.0, 3.0);
    let train = read(&bn.forward_t(&t(&x, &[4, 3]), true).unwrap());
    let eval = read(&bn.forward_t(&t(&x, &[4, 3]), false).unwrap());
    assert_eq!(train, eval);
    for ch in 0..3 {
        let (m, s) = {
            let (m, var, _) = col_stats(&eval, 3, ch);
            (m, var.sqrt())
        };
        assert!(m.abs() < 1e-5 && (s - 1.0).abs() < 1e-3, "{ch}: {m} {s}");
    }
    assert!(
        bn.forward_t(&t(&[1.0; 3], &[1, 3]), false).is_err(),
        "one value per channel, even in eval"
    );
}

/// A BatchNorm training step (forward, counter, running statistics, backward) records
/// kernels only: no queue submission, so no upload and no readback.
#[test]
fn batchnorm_training_step_neither_uploads_nor_reads_back() {
    let d = Device::new().unwrap();
    let vs = VarStore::new(&d, 28);
    for momentum in [Some(0.1), None] {
        let cfg = BatchNormConfig {
            momentum,
            ..Default::default()
        };
        let name = format!("bn{}", momentum.is_some() as u8);
        let bn = BatchNorm::new_2d(&vs.pp(&name), 3, cfg).unwrap();
        let x = Tensor::from_slice(&d, &uniform(29, 2 * 3 * 4, -1.0, 1.0), &[2, 3, 2, 2])
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        d.sync().unwrap();
        let before = d.dispatch_stats();
        for _ in 0..3 {
            let y = bn.forward_t(&x, true).unwrap();
            y.square().unwrap().sum_all().unwrap().backward().unwrap();
        }
        let after = d.dispatch_stats();
        assert!(after.dispatches > before.dispatches);
        assert_eq!(after.submits, before.submits, "momentum {momentum:?}");
        let n = bn
            .num_batches_tracked
            .as_ref()
            .unwrap()
            .to_vec::<u32>()
            .unwrap();
        assert_eq!(n, [3]);
    }
}

/// An empty batch normalizes to an empty output (as PyTorch); the mean loss over no
/// sample is NaN.
#[test]
fn empty_batches() {
    let x = t(&[], &[0, 5]);
    let shape = |y: cinder_device::Result<Tensor>| y.unwrap().shape();
    assert_eq!(shape(layer_norm(&x, &[5], None, None, 1e-5)), [0, 5]);
    assert_eq!(
        shape(group_norm(&t(&[], &[0, 4, 3]), 2, None, None, 1e-5)),
        [0, 4, 3]
    );
    assert_eq!(shape(rms_norm(&x, &[5], None, None)), [0, 5]);
    let l = cinder_nn::loss::cross_entropy(&x, &tu(&[], &[0]), &Default::default()).unwrap();
    assert!(l.item().unwrap().is_nan());
}
