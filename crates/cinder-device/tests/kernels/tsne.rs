//! The exact t-SNE kernels against f64 CPU references of scikit-learn's formulas.

use super::common::*;
use cinder_device::{DType, DeviceTensor, TsneStep};

/// Squared distances of random points (`n` points in `d` dimensions), exactly symmetric.
fn sq_dists(x: &[f32], n: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            let s: f64 = (0..d)
                .map(|c| (x[i * d + c] as f64 - x[j * d + c] as f64).powi(2))
                .sum();
            out[i * n + j] = s as f32;
        }
    }
    out
}

/// scikit-learn's `_binary_search_perplexity` (f64, no shift): row-major conditional P.
fn cpu_conditional(dist: &[f32], n: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let mut p = vec![0.0f64; n * n];
    for i in 0..n {
        let (mut beta, mut lo, mut hi) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
        for _ in 0..100 {
            let mut sum = 0.0;
            for j in 0..n {
                if j != i {
                    p[i * n + j] = (-(dist[i * n + j] as f64) * beta).exp();
                    sum += p[i * n + j];
                }
            }
            if sum == 0.0 {
                sum = 1e-8;
            }
            let mut sdp = 0.0;
            for j in 0..n {
                p[i * n + j] /= sum;
                sdp += dist[i * n + j] as f64 * p[i * n + j];
            }
            let h = sum.ln() + beta * sdp;
            let diff = h - target;
            if diff.abs() <= 1e-5 {
                break;
            }
            if diff > 0.0 {
                lo = beta;
                beta = if hi == f64::INFINITY {
                    beta * 2.0
                } else {
                    (beta + hi) / 2.0
                };
            } else {
                hi = beta;
                beta = if lo == f64::NEG_INFINITY {
                    beta / 2.0
                } else {
                    (beta + lo) / 2.0
                };
            }
        }
    }
    p
}

#[test]
fn perplexity_and_joint_match_the_binary_search() {
    let d = dev();
    let mut r = rng(51);
    let (n, dim) = (67, 5);
    let x = uniform(&mut r, n * dim, -2.0, 2.0);
    let dist = sq_dists(&x, n, dim);
    let dt = tensor(&dist, &[n, n]);
    for perp in [5.0f32, 20.0] {
        let (ct, beta) = dt.tsne_conditional(perp, 100, 1e-5).unwrap();
        let ct = read(&ct);
        let want = cpu_conditional(&dist, n, perp as f64);
        let mut got = vec![0.0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                got[i * n + j] = ct[j * n + i];
            }
        }
        let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        assert_close(&got, &want32, 2e-5, 2e-3);
        assert!(read(&beta).iter().all(|b| *b > 0.0));
        // Every row's perplexity is the target.
        for i in 0..n {
            let h: f64 = (0..n)
                .filter(|&j| j != i && got[i * n + j] > 0.0)
                .map(|j| -(got[i * n + j] as f64) * (got[i * n + j] as f64).ln())
                .sum();
            assert!(
                (h.exp() - perp as f64).abs() < 0.05 * perp as f64,
                "row {i}: {h}"
            );
        }
        // Joint: (c + c^T) / sum, at least eps, zero diagonal.
        let joint = read(&tensor(&ct, &[n, n]).tsne_joint(f32::EPSILON).unwrap());
        let total: f64 = want.iter().sum::<f64>() * 2.0;
        for i in 0..n {
            for j in 0..n {
                let w = if i == j {
                    0.0
                } else {
                    ((want[i * n + j] + want[j * n + i]) / total).max(f32::EPSILON as f64)
                };
                let g = joint[i * n + j] as f64;
                assert!((g - w).abs() <= 1e-7 + 2e-3 * w, "({i},{j}): {g} vs {w}");
            }
        }
    }
    let _ = d;
}

#[test]
fn grad_terms_and_step_match_the_kl_gradient() {
    let d = dev();
    let mut r = rng(52);
    let n = 45;
    let raw = uniform(&mut r, n * n, 0.0, 1.0);
    // A symmetric positive P summing to 1 with zero diagonal.
    let mut p = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            if i != j {
                p[i * n + j] = (raw[i * n + j] + raw[j * n + i]) as f64;
            }
        }
    }
    let s: f64 = p.iter().sum();
    p.iter_mut().for_each(|v| *v /= s);
    let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
    let pt = tensor(&p32, &[n, n]);
    for (k, ex) in [(2usize, 12.0f64), (3, 1.0), (1, 4.0)] {
        let dof = ((k as f64) - 1.0).max(1.0);
        let y = uniform(&mut r, n * k, -3.0, 3.0);
        let yt = tensor(&y, &[n, k]);
        let (a, b, stats) = pt
            .tsne_grad_terms(&yt, dof as f32, ex as f32, true)
            .unwrap();
        // sklearn's _kl_divergence in f64.
        let mut num = vec![0.0f64; n * n];
        let mut z = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let dd: f64 = (0..k)
                        .map(|c| (y[i * k + c] as f64 - y[j * k + c] as f64).powi(2))
                        .sum();
                    num[i * n + j] = (1.0 + dd / dof).powf(-(dof + 1.0) / 2.0);
                    z += num[i * n + j];
                }
            }
        }
        let mut kl = 0.0;
        let mut grad = vec![0.0f64; n * k];
        let coef = 2.0 * (dof + 1.0) / dof;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let q = (num[i * n + j] / z).max(f64::EPSILON);
                    let pe = ex * p[i * n + j];
                    kl += pe * (pe / q).ln();
                    for c in 0..k {
                        grad[i * k + c] += coef
                            * (pe - q)
                            * num[i * n + j]
                            * (y[i * k + c] as f64 - y[j * k + c] as f64);
                    }
                }
            }
        }
        let (av, bv, sv) = (read(&a), read(&b), read(&stats));
        let zg: f64 = (0..n).map(|i| sv[i * 4] as f64).sum();
        let klg: f64 = (0..n).map(|i| sv[i * 4 + 1] as f64).sum::<f64>()
            + (0..n).map(|i| sv[i * 4 + 2] as f64).sum::<f64>() * zg.ln();
        assert!((zg - z).abs() < 1e-4 * z, "Z {zg} vs {z}");
        assert!(
            (klg - kl).abs() < 1e-3 * kl.abs().max(1.0),
            "KL {klg} vs {kl}"
        );
        let g: Vec<f32> = (0..n * k)
            .map(|e| (coef * (av[e] as f64 - bv[e] as f64 / zg)) as f32)
            .collect();
        let want: Vec<f32> = grad.iter().map(|&v| v as f32).collect();
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_close(&g, &want, 1e-4 * scale, 1e-3);

        // One step of momentum and gains from a random previous update.
        let upd0 = uniform(&mut r, n * k, -1.0, 1.0);
        let gains0 = uniform(&mut r, n * k, 0.005, 2.0);
        let (ut, gt) = (tensor(&upd0, &[n, k]), tensor(&gains0, &[n, k]));
        let tot = stats.sum_axis(0, false).unwrap();
        let step = TsneStep {
            coef: coef as f32,
            learning_rate: 50.0,
            momentum: 0.5,
            min_gain: 0.01,
        };
        yt.tsne_step(&ut, &gt, &a, &b, &tot, &stats, step).unwrap();
        let (yn, un, gn, sn) = (read(&yt), read(&ut), read(&gt), read(&stats));
        let mut g2 = vec![0.0f64; n];
        for e in 0..n * k {
            let gr = g[e] as f64;
            let mut gain = gains0[e] as f64;
            gain = if upd0[e] as f64 * gr < 0.0 {
                gain + 0.2
            } else {
                gain * 0.8
            };
            gain = gain.max(0.01);
            let gs = gr * gain;
            let u = 0.5 * upd0[e] as f64 - 50.0 * gs;
            g2[e / k] += gs * gs;
            assert!((gn[e] as f64 - gain).abs() < 1e-5, "gain {e}");
            assert!((un[e] as f64 - u).abs() < 1e-3 * (1.0 + u.abs()), "upd {e}");
            assert!((yn[e] as f64 - y[e] as f64 - u).abs() < 1e-3 * (1.0 + u.abs()));
        }
        for i in 0..n {
            assert!((sn[i * 4 + 3] as f64 - g2[i]).abs() < 1e-3 * (g2[i] + 1e-6));
        }
    }
    let _ = d;
}

#[test]
fn tsne_kernels_refuse_bad_shapes() {
    let d = dev();
    let rect = DeviceTensor::zeros(&d, &[3, 4]).unwrap();
    assert!(rect.tsne_conditional(2.0, 100, 1e-5).is_err());
    assert!(rect.tsne_joint(1e-12).is_err());
    let sq = DeviceTensor::zeros(&d, &[4, 4]).unwrap();
    assert!(sq.tsne_conditional(0.0, 100, 1e-5).is_err());
    assert!(sq.tsne_conditional(f32::NAN, 100, 1e-5).is_err());
    let y5 = DeviceTensor::zeros(&d, &[4, 5]).unwrap();
    assert!(sq.tsne_grad_terms(&y5, 1.0, 1.0, false).is_err());
    let y_wrong = DeviceTensor::zeros(&d, &[3, 2]).unwrap();
    assert!(sq.tsne_grad_terms(&y_wrong, 1.0, 1.0, false).is_err());
    let u = DeviceTensor::uninit(&d, &[4, 2], DType::U32).unwrap();
    assert!(u.tsne_joint(1e-12).is_err());
    // lavapipe binds 128 MiB: a 5792 x 5792 f32 matrix fits, 5793 does not.
    let m = d.max_square_side();
    assert!((m as u64) * (m as u64) * 4 <= d.max_binding_bytes());
    assert!((m as u64 + 1) * (m as u64 + 1) * 4 > d.max_binding_bytes());
}
