//! Every loss against its formula computed here in f64, including extreme logits, each
//! reduction, and the GAN losses and gradient penalty on critics with known gradients.

use cinder_autograd::{Tensor, grad};
use cinder_device::{DeviceTensor, Error};
use cinder_nn::loss::*;

use crate::common::*;

fn scalar(x: &Tensor) -> f64 {
    x.item().unwrap() as f64
}

#[track_caller]
fn close(got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * (1.0 + want.abs()),
        "got {got}, want {want}"
    );
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[test]
fn regression_losses_and_reductions() {
    let p = uniform(1, 12, -2.0, 2.0);
    let q = uniform(2, 12, -2.0, 2.0);
    let (pt, qt) = (t(&p, &[3, 4]), t(&q, &[3, 4]));
    let d: Vec<f64> = p.iter().zip(&q).map(|(a, b)| (a - b) as f64).collect();
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    close(
        scalar(&mse(&pt, &qt, Reduction::Mean).unwrap()),
        mean(d.iter().map(|x| x * x).collect()),
        1e-5,
    );
    close(
        scalar(&mse(&pt, &qt, Reduction::Sum).unwrap()),
        d.iter().map(|x| x * x).sum(),
        1e-5,
    );
    assert_eq!(mse(&pt, &qt, Reduction::None).unwrap().shape(), vec![3, 4]);
    close(
        scalar(&l1(&pt, &qt, Reduction::Mean).unwrap()),
        mean(d.iter().map(|x| x.abs()).collect()),
        1e-5,
    );
    let delta = 0.8;
    let hub: Vec<f64> = d
        .iter()
        .map(|x| {
            if x.abs() < delta {
                0.5 * x * x
            } else {
                delta * (x.abs() - 0.5 * delta)
            }
        })
        .collect();
    assert!(d.iter().any(|x| x.abs() < delta) && d.iter().any(|x| x.abs() > delta));
    close(
        scalar(&huber(&pt, &qt, delta as f32, Reduction::Mean).unwrap()),
        mean(hub),
        1e-5,
    );
    assert!(matches!(
        mse(&pt, &t(&[0.0; 4], &[4]), Reduction::Mean),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(huber(&pt, &qt, 0.0, Reduction::Mean).is_err());
}

#[test]
fn gaussian_nll_and_kl() {
    let x = uniform(3, 6, -1.0, 1.0);
    let y = uniform(4, 6, -1.0, 1.0);
    let v = uniform(5, 6, 0.1, 2.0);
    let got = gaussian_nll(
        &t(&x, &[2, 3]),
        &t(&y, &[2, 3]),
        &t(&v, &[2, 3]),
        true,
        1e-6,
        Reduction::Mean,
    )
    .unwrap();
    let want: f64 = (0..6)
        .map(|i| {
            let (d, var) = ((x[i] - y[i]) as f64, v[i] as f64);
            0.5 * (var.ln() + d * d / var) + 0.5 * (2.0 * std::f64::consts::PI).ln()
        })
        .sum::<f64>()
        / 6.0;
    close(scalar(&got), want, 1e-5);

    let mu = uniform(6, 8, -1.0, 1.0);
    let lv = uniform(7, 8, -1.0, 1.0);
    let got = kl_div_gaussian(&t(&mu, &[2, 4]), &t(&lv, &[2, 4]), Reduction::Mean).unwrap();
    // closed form per sample: 0.5 sum(mu^2 + sigma^2 - log sigma^2 - 1), mean over 2
    let want: f64 = (0..8)
        .map(|i| {
            let (m, l) = (mu[i] as f64, lv[i] as f64);
            0.5 * (m * m + l.exp() - l - 1.0)
        })
        .sum::<f64>()
        / 2.0;
    close(scalar(&got), want, 1e-5);
    // zero exactly at the prior
    let z = kl_div_gaussian(
        &t(&[0.0; 4], &[1, 4]),
        &t(&[0.0; 4], &[1, 4]),
        Reduction::Sum,
    )
    .unwrap();
    assert_eq!(scalar(&z), 0.0);
}

#[test]
fn binary_cross_entropy_including_extremes() {
    let p = [0.0f32, 1.0, 0.3, 0.9, 1e-12];
    let y = [0.0f32, 0.0, 1.0, 0.0, 1.0];
    let got = bce(&t(&p, &[5]), &t(&y, &[5]), Reduction::None).unwrap();
    let want: Vec<f32> = p
        .iter()
        .zip(&y)
        .map(|(&p, &y)| {
            let lp = (p as f64).ln().max(-100.0);
            let lq = (1.0 - p as f64).ln().max(-100.0);
            (-(y as f64 * lp + (1.0 - y as f64) * lq)) as f32
        })
        .collect();
    assert_close(&read(&got), &want, 1e-4, 1e-5);
    assert!(read(&got).iter().all(|v| v.is_finite()));

    // logits far past where sigmoid saturates in f32
    let x = [-100.0f32, -20.0, -1.5, 0.0, 2.0, 30.0, 100.0];
    let y = [1.0f32, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0];
    let got = read(&bce_with_logits(&t(&x, &[7]), &t(&y, &[7]), None, Reduction::None).unwrap());
    let want: Vec<f32> = x
        .iter()
        .zip(&y)
        .map(|(&x, &y)| (softplus(x as f64) - y as f64 * x as f64) as f32)
        .collect();
    assert_close(&got, &want, 1e-5, 1e-5);
    // pos_weight: (1 + (pw - 1) y) softplus(-x) + (1 - y) x
    let pw = 3.0;
    let got = read(
        &bce_with_logits(
            &t(&x, &[7]),
            &t(&y, &[7]),
            Some(&t(&[pw as f32], &[1])),
            Reduction::None,
        )
        .unwrap(),
    );
    let want: Vec<f32> = x
        .iter()
        .zip(&y)
        .map(|(&x, &y)| {
            let (x, y) = (x as f64, y as f64);
            ((1.0 + (pw - 1.0) * y) * softplus(-x) + (1.0 - y) * x) as f32
        })
        .collect();
    assert_close(&got, &want, 1e-4, 1e-5);
}

/// log-softmax rows in f64.
fn log_softmax(z: &[f32], c: usize) -> Vec<f64> {
    z.chunks(c)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f32::MIN, f32::max) as f64;
            let lse = m + r.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            r.iter().map(move |&v| v as f64 - lse).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn cross_entropy_nll_weights_smoothing_and_extreme_logits() {
    let (n, c) = (4, 5);
    let mut z = uniform(8, n * c, -3.0, 3.0);
    z[2] = 1e4; // extreme logits stay finite
    z[7] = -1e4;
    let y = [2u32, 0, 4, 1];
    let w = [0.5f32, 1.0, 2.0, 1.5, 0.25];
    let lp = log_softmax(&z, c);
    let (zt, yt, wt) = (t(&z, &[n, c]), tu(&y, &[n]), t(&w, &[c]));
    let nll_i = |i: usize| -lp[i * c + y[i] as usize];

    let plain = cross_entropy(&zt, &yt, &CrossEntropy::default()).unwrap();
    close(
        scalar(&plain),
        (0..n).map(nll_i).sum::<f64>() / n as f64,
        1e-5,
    );
    let via_nll = nll(
        &zt.log_softmax(1).unwrap(),
        &yt,
        &Nll {
            reduction: Reduction::Sum,
            ..Default::default()
        },
    )
    .unwrap();
    close(scalar(&via_nll), (0..n).map(nll_i).sum::<f64>(), 1e-5);

    let wsum: f64 = y.iter().map(|&k| w[k as usize] as f64).sum();
    let weighted = cross_entropy(
        &zt,
        &yt,
        &CrossEntropy {
            weight: Some(wt.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let want_w = (0..n)
        .map(|i| w[y[i] as usize] as f64 * nll_i(i))
        .sum::<f64>()
        / wsum;
    close(scalar(&weighted), want_w, 1e-5);

    let eps = 0.1;
    let smooth_i = |i: usize, weights: bool| -> f64 {
        (0..c)
            .map(|k| -lp[i * c + k] * if weights { w[k] as f64 } else { 1.0 })
            .sum::<f64>()
            / c as f64
    };
    let ls = cross_entropy(
        &zt,
        &yt,
        &CrossEntropy {
            label_smoothing: eps,
            ..Default::default()
        },
    )
    .unwrap();
    let want_ls = (0..n)
        .map(|i| (1.0 - eps as f64) * nll_i(i) + eps as f64 * smooth_i(i, false))
        .sum::<f64>()
        / n as f64;
    close(scalar(&ls), want_ls, 1e-5);
    let both = cross_entropy(
        &zt,
        &yt,
        &CrossEntropy {
            weight: Some(wt),
            label_smoothing: eps,
            reduction: Reduction::Mean,
            ignore_index: None,
        },
    )
    .unwrap();
    let want_both = (0..n)
        .map(|i| {
            (1.0 - eps as f64) * w[y[i] as usize] as f64 * nll_i(i) + eps as f64 * smooth_i(i, true)
        })
        .sum::<f64>()
        / wsum;
    close(scalar(&both), want_both, 1e-5);
    assert!(scalar(&plain).is_finite());

    assert!(
        cross_entropy(&zt, &t(&[0.0; 4], &[4]), &CrossEntropy::default()).is_err(),
        "f32 targets"
    );
    assert!(
        cross_entropy(&zt, &tu(&[0; 3], &[3]), &CrossEntropy::default()).is_err(),
        "count"
    );
}

#[test]
fn contrastive_and_triplet() {
    let a = uniform(9, 8, -1.0, 1.0);
    let b = uniform(10, 8, -1.0, 1.0);
    let sim = [1.0f32, 0.0, 0.0, 1.0];
    let margin = 1.5;
    let got = contrastive(
        &t(&a, &[4, 2]),
        &t(&b, &[4, 2]),
        &t(&sim, &[4]),
        margin,
        Reduction::Mean,
    )
    .unwrap();
    let want = (0..4)
        .map(|i| {
            let d2: f64 = (0..2)
                .map(|k| ((a[i * 2 + k] - b[i * 2 + k]) as f64).powi(2))
                .sum();
            let d = d2.sqrt();
            sim[i] as f64 * d2 + (1.0 - sim[i] as f64) * (margin as f64 - d).max(0.0).powi(2)
        })
        .sum::<f64>()
        / 4.0;
    close(scalar(&got), want, 1e-5);

    let p = uniform(11, 8, -1.0, 1.0);
    let n = uniform(12, 8, -1.0, 1.0);
    let got = triplet_margin(
        &t(&a, &[4, 2]),
        &t(&p, &[4, 2]),
        &t(&n, &[4, 2]),
        &TripletMargin {
            reduction: Reduction::Sum,
            ..Default::default()
        },
    )
    .unwrap();
    let dist = |x: &[f32], y: &[f32], i: usize| -> f64 {
        (0..2)
            .map(|k| ((x[i * 2 + k] - y[i * 2 + k]) as f64 + 1e-6).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let want: f64 = (0..4)
        .map(|i| (dist(&a, &p, i) - dist(&a, &n, i) + 1.0).max(0.0))
        .sum();
    close(scalar(&got), want, 1e-5);
}

#[test]
fn gan_losses_against_formulas() {
    let r = [-3.0f32, 0.5, 2.0, 40.0];
    let f = [-50.0f32, -0.5, 1.0, 3.0];
    let (rt, ft) = (t(&r, &[4, 1]), t(&f, &[4, 1]));
    let m = |v: &[f32], g: &dyn Fn(f64) -> f64| {
        v.iter().map(|&x| g(x as f64)).sum::<f64>() / v.len() as f64
    };
    let cases: [(GanLoss, f64, f64); 5] = [
        (
            GanLoss::Minimax,
            m(&r, &|x| softplus(-x)) + m(&f, &softplus),
            -m(&f, &softplus),
        ),
        (
            GanLoss::NonSaturating,
            m(&r, &|x| softplus(-x)) + m(&f, &softplus),
            m(&f, &|x| softplus(-x)),
        ),
        (GanLoss::Wgan, m(&f, &|x| x) - m(&r, &|x| x), -m(&f, &|x| x)),
        (
            GanLoss::Hinge,
            m(&r, &|x| (1.0 - x).max(0.0)) + m(&f, &|x| (1.0 + x).max(0.0)),
            -m(&f, &|x| x),
        ),
        (
            GanLoss::Lsgan,
            0.5 * m(&r, &|x| (x - 1.0).powi(2)) + 0.5 * m(&f, &|x| x * x),
            0.5 * m(&f, &|x| (x - 1.0).powi(2)),
        ),
    ];
    for (kind, d, g) in cases {
        close(scalar(&kind.d_loss(&rt, &ft).unwrap()), d, 1e-5);
        close(scalar(&kind.g_loss(&ft).unwrap()), g, 1e-5);
    }
}

#[test]
fn gradient_penalty_of_a_linear_critic() {
    // D(x) = x . w has input gradient w everywhere: the penalty is (||w|| - 1)^2 at any
    // interpolate, and its gradient in w is 2 (||w|| - 1) w / ||w||.
    let d = dev();
    let wv = [0.6f32, -1.2, 0.9];
    let norm = (wv.iter().map(|v| (v * v) as f64).sum::<f64>()).sqrt();
    let real = t(&uniform(13, 5 * 3, -1.0, 1.0), &[5, 3]);
    let fake = t(&uniform(14, 5 * 3, -1.0, 1.0), &[5, 3]);
    for kind in [Penalty::WganGp, Penalty::Dragan { c: 0.5 }] {
        let w = Tensor::parameter(DeviceTensor::from_slice(&d, &wv, &[3, 1]).unwrap()).unwrap();
        let gp = gradient_penalty(|x| x.matmul(&w), &real, &fake, kind, 7, 0).unwrap();
        close(scalar(&gp), (norm - 1.0).powi(2), 1e-5);
        let gw = read(&grad(&[&gp], &[&w], false).unwrap()[0]);
        let want: Vec<f32> = wv
            .iter()
            .map(|&v| (2.0 * (norm - 1.0) * v as f64 / norm) as f32)
            .collect();
        assert_close(&gw, &want, 1e-5, 1e-4);
    }
    assert!(
        gradient_penalty(
            |x| Ok(x.clone()),
            &real,
            &t(&[0.0; 3], &[1, 3]),
            Penalty::WganGp,
            0,
            0
        )
        .is_err()
    );
}
