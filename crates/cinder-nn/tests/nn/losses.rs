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

#[test]
fn kl_div_both_target_forms_and_every_reduction() {
    let (n, c) = (3, 4);
    let z = uniform(30, n * c, -2.0, 2.0);
    let logp: Vec<f64> = log_softmax(&z, c);
    let mut q: Vec<f32> = uniform(31, n * c, 0.05, 1.0);
    q[1] = 0.0; // 0 log 0 = 0
    let x = t(&logp.iter().map(|&v| v as f32).collect::<Vec<_>>(), &[n, c]);
    let qt = t(&q, &[n, c]);
    let pointwise: Vec<f64> = (0..n * c)
        .map(|i| {
            let tq = q[i] as f64;
            if tq == 0.0 {
                0.0
            } else {
                tq * (tq.ln() - logp[i])
            }
        })
        .collect();
    let sum: f64 = pointwise.iter().sum();
    let got = read(&kl_div(&x, &qt, KlReduction::None, false).unwrap());
    assert_close(
        &got,
        &pointwise.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        1e-6,
        1e-5,
    );
    close(
        scalar(&kl_div(&x, &qt, KlReduction::Sum, false).unwrap()),
        sum,
        1e-5,
    );
    close(
        scalar(&kl_div(&x, &qt, KlReduction::Mean, false).unwrap()),
        sum / (n * c) as f64,
        1e-5,
    );
    close(
        scalar(&kl_div(&x, &qt, KlReduction::BatchMean, false).unwrap()),
        sum / n as f64,
        1e-5,
    );
    // log targets: exp(t) (t - x)
    let lt = uniform(32, n * c, -3.0, 0.0);
    let want: f64 = (0..n * c)
        .map(|i| (lt[i] as f64).exp() * (lt[i] as f64 - logp[i]))
        .sum();
    close(
        scalar(&kl_div(&x, &t(&lt, &[n, c]), KlReduction::Sum, true).unwrap()),
        want,
        1e-5,
    );
    // negative targets give NaN (PyTorch's xlogy); a shape that does not broadcast is Err
    let neg = read(&kl_div(&x, &t(&[-0.5; 4], &[4]), KlReduction::None, false).unwrap());
    assert!(neg.iter().all(|v| v.is_nan()));
    assert!(kl_div(&x, &t(&[0.5; 3], &[3]), KlReduction::Sum, false).is_err());

    // gradients: d/dx = -t; d/dt = log t + 1 - x, NaN at t = 0 as PyTorch
    let xp = Tensor::parameter(x.raw()).unwrap();
    let qp = Tensor::parameter(qt.raw()).unwrap();
    let l = kl_div(&xp, &qp, KlReduction::Sum, false).unwrap();
    let g = grad(&[&l], &[&xp, &qp], false).unwrap();
    let gx = read(&g[0]);
    let gt = read(&g[1]);
    for i in 0..n * c {
        assert!((gx[i] + q[i]).abs() < 1e-6);
        if q[i] == 0.0 {
            assert!(gt[i].is_nan());
        } else {
            let want = (q[i] as f64).ln() + 1.0 - logp[i];
            assert!((gt[i] as f64 - want).abs() < 1e-4, "{i}");
        }
    }
    cinder_autograd::gradcheck(
        &[x.clone(), t(&lt, &[n, c])],
        |v| kl_div(&v[0], &v[1], KlReduction::BatchMean, true),
        &Default::default(),
    )
    .unwrap();
}

#[test]
fn smooth_l1_beta_and_its_l1_limit() {
    let p = uniform(33, 12, -2.0, 2.0);
    let q = uniform(34, 12, -2.0, 2.0);
    let (pt, qt) = (t(&p, &[3, 4]), t(&q, &[3, 4]));
    for beta in [1.0f64, 0.3] {
        let want: f64 = p
            .iter()
            .zip(&q)
            .map(|(&a, &b)| {
                let d = (a - b) as f64;
                if d.abs() < beta {
                    0.5 * d * d / beta
                } else {
                    d.abs() - 0.5 * beta
                }
            })
            .sum();
        close(
            scalar(&smooth_l1(&pt, &qt, beta as f32, Reduction::Sum).unwrap()),
            want,
            1e-5,
        );
        cinder_autograd::gradcheck(
            &[pt.clone(), qt.clone()],
            |v| smooth_l1(&v[0], &v[1], beta as f32, Reduction::Mean),
            &Default::default(),
        )
        .unwrap();
    }
    assert_eq!(
        read(&smooth_l1(&pt, &qt, 0.0, Reduction::None).unwrap()),
        read(&l1(&pt, &qt, Reduction::None).unwrap()),
        "beta = 0 is L1"
    );
    assert!(smooth_l1(&pt, &qt, -1.0, Reduction::Mean).is_err());
    assert!(smooth_l1(&pt, &qt, f32::NAN, Reduction::Mean).is_err());
}

/// Cross-entropy over `[N, C, d]` with class weights, label smoothing and an ignored index
/// beyond the classes, against the formula in f64; gradients by finite differences.
#[test]
fn cross_entropy_nd_with_ignore_index_weights_and_smoothing() {
    let (n, c, d) = (2, 3, 4);
    let z = uniform(35, n * c * d, -3.0, 3.0);
    // targets [N, d] with 255 ignored (out of range for 3 classes)
    let y: Vec<u32> = vec![0, 2, 255, 1, 1, 255, 0, 2];
    let w = [0.5f32, 2.0, 1.25];
    let eps = 0.2f64;
    let logp = |ni: usize, k: usize, j: usize| -> f64 {
        let col: Vec<f64> = (0..c).map(|kk| z[(ni * c + kk) * d + j] as f64).collect();
        let m = col.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + col.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        col[k] - lse
    };
    let mut per = vec![0f64; n * d];
    let mut wsum = 0.0;
    for ni in 0..n {
        for j in 0..d {
            let yi = y[ni * d + j];
            if yi == 255 {
                continue;
            }
            let wy = w[yi as usize] as f64;
            let smooth: f64 = (0..c).map(|k| -logp(ni, k, j) * w[k] as f64).sum();
            per[ni * d + j] =
                (1.0 - eps) * wy * -logp(ni, yi as usize, j) + eps / c as f64 * smooth;
            wsum += wy;
        }
    }
    let (zt, yt, wt) = (t(&z, &[n, c, d]), tu(&y, &[n, d]), t(&w, &[c]));
    let opts = |r| CrossEntropy {
        weight: Some(wt.clone()),
        label_smoothing: eps as f32,
        reduction: r,
        ignore_index: Some(255),
    };
    let none = read(&cross_entropy(&zt, &yt, &opts(Reduction::None)).unwrap());
    assert_eq!(none.len(), n * d);
    assert_close(
        &none,
        &per.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        1e-5,
        1e-4,
    );
    close(
        scalar(&cross_entropy(&zt, &yt, &opts(Reduction::Mean)).unwrap()),
        per.iter().sum::<f64>() / wsum,
        1e-5,
    );
    cinder_autograd::gradcheck(
        std::slice::from_ref(&zt),
        |v| cross_entropy(&v[0], &yt, &opts(Reduction::Mean)),
        &Default::default(),
    )
    .unwrap();

    // every target ignored: the mean is NaN (0 / 0), the sum 0, the gradient 0
    let all = tu(&[255; 8], &[n, d]);
    assert!(scalar(&cross_entropy(&zt, &all, &opts(Reduction::Mean)).unwrap()).is_nan());
    assert_eq!(
        scalar(&cross_entropy(&zt, &all, &opts(Reduction::Sum)).unwrap()),
        0.0
    );
    let zp = Tensor::parameter(zt.raw()).unwrap();
    let l = cross_entropy(&zp, &all, &opts(Reduction::Mean)).unwrap();
    let g = read(&grad(&[&l], &[&zp], false).unwrap()[0]);
    assert!(g.iter().all(|&v| v == 0.0), "{g:?}");

    // nll over the same layout, with the same ignored targets
    let lp = zt.log_softmax(1).unwrap();
    let got = nll(
        &lp,
        &yt,
        &Nll {
            ignore_index: Some(255),
            reduction: Reduction::Sum,
            ..Default::default()
        },
    )
    .unwrap();
    let want: f64 = (0..n * d)
        .filter(|&i| y[i] != 255)
        .map(|i| -logp(i / d, y[i] as usize, i % d))
        .sum();
    close(scalar(&got), want, 1e-5);

    // misuse
    assert!(cross_entropy(&zt, &tu(&[0; 6], &[n, 3]), &CrossEntropy::default()).is_err());
    let bad_w = CrossEntropy {
        weight: Some(t(&[1.0; 2], &[2])),
        ..Default::default()
    };
    assert!(cross_entropy(&zt, &yt, &bad_w).is_err());
    assert!(cross_entropy(&t(&[1.0], &[]), &tu(&[0], &[]), &CrossEntropy::default()).is_err());
}

#[test]
fn cross_entropy_with_probability_targets_and_unbatched_input() {
    let (n, c) = (3, 4);
    let z = uniform(36, n * c, -2.0, 2.0);
    let q: Vec<f32> = {
        let raw = uniform(37, n * c, 0.0, 1.0);
        raw.chunks(c)
            .flat_map(|r| {
                let s: f32 = r.iter().sum();
                r.iter().map(move |v| v / s).collect::<Vec<_>>()
            })
            .collect()
    };
    let w = [0.5f32, 1.0, 2.0, 1.5];
    let e = 0.1f64;
    let lp = log_softmax(&z, c);
    let want: f64 = (0..n * c)
        .map(|i| -(w[i % c] as f64) * ((1.0 - e) * q[i] as f64 + e / c as f64) * lp[i])
        .sum::<f64>()
        / n as f64;
    let opts = CrossEntropy {
        weight: Some(t(&w, &[c])),
        label_smoothing: e as f32,
        ..Default::default()
    };
    let (zt, qt) = (t(&z, &[n, c]), t(&q, &[n, c]));
    close(scalar(&cross_entropy(&zt, &qt, &opts).unwrap()), want, 1e-5);
    cinder_autograd::gradcheck(
        &[zt.clone(), qt.clone()],
        |v| cross_entropy(&v[0], &v[1], &opts),
        &Default::default(),
    )
    .unwrap();
    let with_ignore = CrossEntropy {
        ignore_index: Some(0),
        ..Default::default()
    };
    assert!(cross_entropy(&zt, &qt, &with_ignore).is_err());
    assert!(cross_entropy(&zt, &t(&q[..8], &[2, 4]), &CrossEntropy::default()).is_err());

    // unbatched [C] with a target []: the loss of one sample
    let one = cross_entropy(
        &t(&z[..c], &[c]),
        &tu(&[2], &[]),
        &CrossEntropy {
            reduction: Reduction::None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(one.shape(), Vec::<usize>::new());
    close(scalar(&one), -lp[2], 1e-5);
}

/// BCE at p of exactly 0 and 1: finite losses and PyTorch's gradients, also through a
/// sigmoid that rounds to 1 in f32.
#[test]
fn bce_gradient_at_saturation_is_pytorchs() {
    let p = [0.0f32, 0.0, 1.0, 1.0, 0.3, 1.0];
    let y = [0.0f32, 1.0, 0.0, 1.0, 0.6, 0.25];
    let pp = Tensor::parameter(t(&p, &[6]).raw()).unwrap();
    let yp = Tensor::parameter(t(&y, &[6]).raw()).unwrap();
    let l = bce(&pp, &yp, Reduction::Sum).unwrap();
    let lv = read(&bce(&pp, &yp, Reduction::None).unwrap());
    assert_eq!(&lv[..4], &[0.0, 100.0, 100.0, 0.0]);
    let g = grad(&[&l], &[&pp, &yp], false).unwrap();
    let (gp, gy) = (read(&g[0]), read(&g[1]));
    for i in 0..6 {
        let (p, y) = (p[i] as f64, y[i] as f64);
        let want = (p - y) / ((1.0 - p) * p).max(1e-12);
        assert!(
            (gp[i] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "{i}: {} vs {want}",
            gp[i]
        );
        let want_y = (1.0 - p).ln() - p.ln();
        if want_y.is_infinite() {
            assert_eq!(gy[i] as f64, want_y, "{i}");
        } else {
            assert!((gy[i] as f64 - want_y).abs() < 1e-5, "{i}");
        }
    }

    // sigmoid(x) is exactly 1.0 in f32 from x of about 17 on: finite loss, finite gradient
    let x = [17.0f32, 20.0, 100.0, -100.0, -30.0, 2.0];
    let ty = [1.0f32, 0.0, 0.3, 0.7, 1.0, 0.5];
    let xp = Tensor::parameter(t(&x, &[6]).raw()).unwrap();
    let l = bce(&xp.sigmoid().unwrap(), &t(&ty, &[6]), Reduction::Sum).unwrap();
    assert!(scalar(&l).is_finite());
    let gx = read(&grad(&[&l], &[&xp], false).unwrap()[0]);
    assert!(gx.iter().all(|v| v.is_finite()), "{gx:?}");
    // where sigmoid is not saturated the gradient is sigmoid(x) - t
    let s = 1.0 / (1.0 + (-2.0f64).exp());
    assert!((gx[5] as f64 - (s - 0.5)).abs() < 1e-5);
    // saturated: PyTorch's rule gives (p - t) / 1e-12 * p (1 - p) = 0
    assert_eq!(&gx[..3], &[0.0, 0.0, 0.0]);

    // interior points: first and second order by finite differences
    let pi = t(&uniform(38, 6, 0.1, 0.9), &[6]);
    let yi = t(&uniform(39, 6, 0.0, 1.0), &[6]);
    cinder_autograd::gradcheck(
        &[pi.clone(), yi.clone()],
        |v| bce(&v[0], &v[1], Reduction::Mean),
        &Default::default(),
    )
    .unwrap();
    cinder_autograd::gradcheck(
        &[pi, yi],
        |v| {
            let l = bce(&v[0], &v[1], Reduction::Sum)?;
            let g = grad(&[&l], &[&v[0]], true)?;
            g[0].square()?.sum_all()
        },
        &cinder_autograd::GradcheckOptions {
            eps: 1e-3,
            atol: 1e-2,
            rtol: 1e-2,
            ..Default::default()
        },
    )
    .unwrap();

    // outside [0, 1] (or NaN) PyTorch raises: Cinder reports it at the next readback
    for (p, y, what) in [
        ([1.5f32, 0.5], [0.0f32, 0.0], "input"),
        ([f32::NAN, 0.5], [0.0, 0.0], "input"),
        ([0.5, 0.5], [0.0, 2.0], "target"),
    ] {
        let l = bce(&t(&p, &[2]), &t(&y, &[2]), Reduction::Mean).unwrap();
        match l.to_vec::<f32>() {
            Err(cinder_device::Error::OutOfDomain {
                op: "bce",
                expected,
            }) => {
                assert!(expected.contains(what), "{expected}")
            }
            other => panic!("{p:?} {y:?}: expected OutOfDomain, got {other:?}"),
        }
    }
    assert!(
        bce(
            &t(&[0.0, 1.0], &[2]),
            &t(&[1.0, 0.0], &[2]),
            Reduction::Mean
        )
        .unwrap()
        .item()
        .is_ok()
    );
}

#[test]
fn gaussian_nll_keeps_the_gradient_below_eps_and_pytorchs_var_shapes() {
    let eps = 1e-3f32;
    let x = [0.5f32, -1.0, 2.0, 0.0];
    let y = [0.0f32, 0.5, 1.0, -1.0];
    let v = [1e-6f32, 0.5, 2.0, 1e-4]; // two below eps
    let (xt, yt) = (t(&x, &[2, 2]), t(&y, &[2, 2]));
    let vp = Tensor::parameter(t(&v, &[2, 2]).raw()).unwrap();
    let l = gaussian_nll(&xt, &yt, &vp, false, eps, Reduction::Sum).unwrap();
    let g = read(&grad(&[&l], &[&vp], false).unwrap()[0]);
    for i in 0..4 {
        let vc = (v[i].max(eps)) as f64;
        let d2 = ((x[i] - y[i]) as f64).powi(2);
        // d/dv 0.5 (log v + d^2 / v) at the clamped value, as if unclamped
        let want = 0.5 * (1.0 / vc - d2 / (vc * vc));
        assert!(
            (g[i] as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "{i}: {} {want}",
            g[i]
        );
        assert!(g[i] != 0.0);
    }
    // var [N] (one fewer dimension) and [N, 1] are the same homoscedastic case
    let v1 = t(&[0.5, 2.0], &[2]);
    let a = scalar(&gaussian_nll(&xt, &yt, &v1, true, 1e-6, Reduction::Mean).unwrap());
    let b = scalar(
        &gaussian_nll(
            &xt,
            &yt,
            &v1.reshape(&[2, 1]).unwrap(),
            true,
            1e-6,
            Reduction::Mean,
        )
        .unwrap(),
    );
    assert_eq!(a, b);
    let want: f64 = (0..4)
        .map(|i| {
            let var = [0.5f64, 2.0][i / 2];
            let d2 = ((x[i] - y[i]) as f64).powi(2);
            0.5 * (var.ln() + d2 / var) + 0.5 * (2.0 * std::f64::consts::PI).ln()
        })
        .sum::<f64>()
        / 4.0;
    close(a, want, 1e-5);
    assert!(gaussian_nll(&xt, &yt, &t(&[1.0; 3], &[3]), false, 1e-6, Reduction::Mean).is_err());
    assert!(
        gaussian_nll(
            &xt,
            &yt,
            &t(&[1.0; 2], &[1, 2, 1]),
            false,
            1e-6,
            Reduction::Mean
        )
        .is_err()
    );
    // a negative variance: PyTorch raises, Cinder reports it at the next readback; a NaN
    // variance passes PyTorch's check and gives NaN
    let nll = |v: &[f32]| {
        gaussian_nll(&xt, &yt, &t(v, &[2, 2]), false, 1e-6, Reduction::None)
            .unwrap()
            .to_vec::<f32>()
    };
    assert!(matches!(
        nll(&[1.0, -1.0, 1.0, 1.0]),
        Err(cinder_device::Error::OutOfDomain {
            op: "gaussian_nll",
            ..
        })
    ));
    let with_nan = nll(&[1.0, f32::NAN, 1.0, 1.0]).unwrap();
    assert!(with_nan[1].is_nan() && with_nan[0].is_finite());
}

#[test]
fn triplet_options_cosine_embedding_and_margin_ranking() {
    let (n, d) = (4, 3);
    let a = uniform(40, n * d, -1.0, 1.0);
    let p = uniform(41, n * d, -1.0, 1.0);
    let ng = uniform(42, n * d, -1.0, 1.0);
    let dist = |x: &[f32], y: &[f32], i: usize, pw: f64, eps: f64| -> f64 {
        (0..d)
            .map(|k| ((x[i * d + k] - y[i * d + k]) as f64 + eps).abs().powf(pw))
            .sum::<f64>()
            .powf(1.0 / pw)
    };
    let (at, pt, nt) = (t(&a, &[n, d]), t(&p, &[n, d]), t(&ng, &[n, d]));
    for (pw, swap) in [(1.0f32, false), (3.0, true), (2.0, true)] {
        let opts = TripletMargin {
            margin: 0.7,
            p: pw,
            swap,
            reduction: Reduction::Sum,
            ..Default::default()
        };
        let want: f64 = (0..n)
            .map(|i| {
                let (pw, e) = (pw as f64, 1e-6);
                let mut dn = dist(&a, &ng, i, pw, e);
                if swap {
                    dn = dn.min(dist(&p, &ng, i, pw, e));
                }
                (dist(&a, &p, i, pw, e) - dn + 0.7).max(0.0)
            })
            .sum();
        close(
            scalar(&triplet_margin(&at, &pt, &nt, &opts).unwrap()),
            want,
            1e-5,
        );
        cinder_autograd::gradcheck(
            &[at.clone(), pt.clone(), nt.clone()],
            |v| triplet_margin(&v[0], &v[1], &v[2], &opts),
            &Default::default(),
        )
        .unwrap();
    }
    let zero_margin = TripletMargin {
        margin: 0.0,
        ..Default::default()
    };
    assert!(triplet_margin(&at, &pt, &nt, &zero_margin).is_err());

    // cosine embedding: 1 - cos for y = 1, max(0, cos - margin) for y = -1, 0 otherwise
    let yv = [1.0f32, -1.0, -1.0, 0.0];
    let margin = 0.1;
    let cos = |i: usize| -> f64 {
        let dot: f64 = (0..d).map(|k| (a[i * d + k] * p[i * d + k]) as f64).sum();
        let na: f64 = (0..d).map(|k| (a[i * d + k] as f64).powi(2)).sum::<f64>() + 1e-12;
        let np: f64 = (0..d).map(|k| (p[i * d + k] as f64).powi(2)).sum::<f64>() + 1e-12;
        dot / (na * np).sqrt()
    };
    let want: f64 = (0..n)
        .map(|i| match yv[i] {
            1.0 => 1.0 - cos(i),
            -1.0 => (cos(i) - margin).max(0.0),
            _ => 0.0,
        })
        .sum::<f64>()
        / n as f64;
    let yt = t(&yv, &[n]);
    close(
        scalar(&cosine_embedding(&at, &pt, &yt, margin as f32, Reduction::Mean).unwrap()),
        want,
        1e-5,
    );
    cinder_autograd::gradcheck(
        &[at.clone(), pt.clone()],
        |v| cosine_embedding(&v[0], &v[1], &yt, margin as f32, Reduction::Sum),
        &Default::default(),
    )
    .unwrap();
    assert!(cosine_embedding(&at, &pt, &t(&[1.0; 3], &[3]), 0.0, Reduction::Mean).is_err());

    // margin ranking: max(0, -y (x1 - x2) + margin)
    let x1 = uniform(43, 6, -1.0, 1.0);
    let x2 = uniform(44, 6, -1.0, 1.0);
    let yr = [1.0f32, -1.0, 1.0, -1.0, 1.0, -1.0];
    let want: f64 = (0..6)
        .map(|i| (-(yr[i] as f64) * (x1[i] - x2[i]) as f64 + 0.2).max(0.0))
        .sum();
    let (x1t, x2t, yrt) = (t(&x1, &[6]), t(&x2, &[6]), t(&yr, &[6]));
    close(
        scalar(&margin_ranking(&x1t, &x2t, &yrt, 0.2, Reduction::Sum).unwrap()),
        want,
        1e-5,
    );
    cinder_autograd::gradcheck(
        &[x1t.clone(), x2t.clone()],
        |v| margin_ranking(&v[0], &v[1], &yrt, 0.2, Reduction::Mean),
        &Default::default(),
    )
    .unwrap();
    assert!(margin_ranking(&x1t, &x2t, &t(&yr, &[6, 1]), 0.2, Reduction::Mean).is_err());
}
