//! Exact t-SNE against an f64 host reference of scikit-learn's joint probabilities and KL
//! divergence, and trustworthiness against a plain ranking reference.

use crate::common::*;
use cinder_models::classical::{Tsne, TsneInit, trustworthiness};

/// `per` points around each of `k` centres in `d` dimensions.
fn blobs(seed: u64, k: usize, per: usize, d: usize) -> (Vec<f32>, Vec<usize>) {
    let mut r = rng(seed);
    let centres = uniform(&mut r, k * d, -8.0, 8.0);
    let noise = normal(&mut r, k * per * d);
    let mut x = Vec::new();
    let mut lab = Vec::new();
    for i in 0..k * per {
        for j in 0..d {
            x.push(centres[(i % k) * d + j] + noise[i * d + j]);
        }
        lab.push(i % k);
    }
    (x, lab)
}

fn sq(x: &[f64], d: usize, i: usize, j: usize) -> f64 {
    (0..d).map(|t| (x[i * d + t] - x[j * d + t]).powi(2)).sum()
}

/// scikit-learn's `_joint_probabilities`: the per-row binary search on squared distances
/// (100 steps, entropy tolerance 1e-5), `P = (C + C^T) / sum`, floored at f64's epsilon.
fn host_p(x: &[f64], n: usize, d: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        let (mut beta, mut lo, mut hi) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
        for _ in 0..100 {
            let mut sum = 0.0;
            for j in 0..n {
                let p = if j == i {
                    0.0
                } else {
                    (-sq(x, d, i, j) * beta).exp()
                };
                c[i * n + j] = p;
                sum += p;
            }
            let sum = sum.max(1e-8);
            let mut h = 0.0;
            for j in 0..n {
                c[i * n + j] /= sum;
                h += sq(x, d, i, j) * c[i * n + j];
            }
            let h = sum.ln() + beta * h;
            if (h - target).abs() <= 1e-5 {
                break;
            }
            if h > target {
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
    let mut p = vec![0.0; n * n];
    let mut total = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i != j {
                p[i * n + j] = c[i * n + j] + c[j * n + i];
                total += p[i * n + j];
            }
        }
    }
    p.iter_mut()
        .for_each(|v| *v = (*v / total).max(f64::EPSILON));
    p
}

/// `KL(P || Q)` with Student-t `Q` (one degree of freedom) of the embedding `y` (`[n, 2]`).
fn host_kl(p: &[f64], y: &[f64], n: usize) -> f64 {
    let mut q = vec![0.0; n * n];
    let mut total = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i != j {
                q[i * n + j] = 1.0 / (1.0 + sq(y, 2, i, j));
                total += q[i * n + j];
            }
        }
    }
    let mut kl = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i != j {
                let qij = (q[i * n + j] / total).max(f64::EPSILON);
                kl += p[i * n + j] * (p[i * n + j] / qij).ln();
            }
        }
    }
    kl
}

/// Trustworthiness by full sorts (scikit-learn's definition, ties by index).
fn host_trust(x: &[f64], d: usize, y: &[f64], k: usize, n: usize, nn: usize) -> f64 {
    let mut pen = 0usize;
    for i in 0..n {
        let order = |v: &[f64], dim: usize| {
            let mut o: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            o.sort_by(|&a, &b| {
                sq(v, dim, i, a)
                    .total_cmp(&sq(v, dim, i, b))
                    .then(a.cmp(&b))
            });
            o
        };
        let (ox, oy) = (order(x, d), order(y, k));
        for &j in &oy[..nn] {
            let rank = 1 + ox.iter().position(|&l| l == j).unwrap();
            pen += rank.saturating_sub(nn);
        }
    }
    let (nf, kf) = (n as f64, nn as f64);
    1.0 - pen as f64 * 2.0 / (nf * kf * (2.0 * nf - 3.0 * kf - 1.0))
}

#[test]
fn tsne_kl_matches_the_host_reference_and_separates_blobs() {
    let (n, d) = (60, 6);
    let (x, lab) = blobs(3, 3, 20, d);
    let xt = tensor(&x, &[n, d]);
    let mut t = Tsne::new(2).with_perplexity(10.0).with_seed(1);
    let mut checks = Vec::new();
    let y = t.fit_transform_with(&xt, |c| checks.push(c)).unwrap();
    assert_eq!(y.shape(), vec![n, 2]);
    let yv: Vec<f64> = read(&y).iter().map(|&v| v as f64).collect();
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    // The reported KL is the one of P computed as scikit-learn does, at the final embedding
    // (reported before the last step, which moves a converged embedding negligibly).
    let p = host_p(&xd, n, d, 10.0);
    let want = host_kl(&p, &yv, n);
    let got = t.kl_divergence().unwrap() as f64;
    assert!(
        (got - want).abs() <= 2e-3 * want.max(1e-3),
        "KL {got} vs host {want}"
    );
    assert_eq!(t.n_iter().unwrap(), 999);
    assert_eq!(checks.len(), 20, "a check every 50 iterations");
    assert!(checks[19].kl_divergence < checks[5].kl_divergence);
    // Blobs stay apart: each point's nearest embedded neighbour is in its blob.
    for i in 0..n {
        let j = (0..n)
            .filter(|&j| j != i)
            .min_by(|&a, &b| sq(&yv, 2, i, a).total_cmp(&sq(&yv, 2, i, b)))
            .unwrap();
        assert_eq!(lab[i], lab[j], "point {i}");
    }
    // Trustworthiness against the plain reference, on this embedding and a random one.
    let tw = trustworthiness(&xt, &y, 5).unwrap() as f64;
    assert!((tw - host_trust(&xd, d, &yv, 2, n, 5)).abs() < 1e-6);
    assert!(tw > 0.9, "trustworthiness {tw}");
    let rnd = uniform(&mut rng(9), n * 2, -1.0, 1.0);
    let rd: Vec<f64> = rnd.iter().map(|&v| v as f64).collect();
    let tr = trustworthiness(&xt, &tensor(&rnd, &[n, 2]), 5).unwrap() as f64;
    assert!((tr - host_trust(&xd, d, &rd, 2, n, 5)).abs() < 1e-6);
    assert!(tr < tw);
    // Identity embedding: perfectly trustworthy.
    assert!((trustworthiness(&xt, &xt, 5).unwrap() - 1.0).abs() < 1e-6);
}

#[test]
fn tsne_seeded_random_start_is_reproducible() {
    let (n, d) = (30, 4);
    let (x, _) = blobs(5, 2, 15, d);
    let xt = tensor(&x, &[n, d]);
    let run = || {
        let mut t = Tsne::new(2)
            .with_init(TsneInit::Random)
            .with_perplexity(5.0)
            .with_max_iter(300)
            .with_seed(4);
        read(t.fit_transform(&xt).unwrap())
    };
    assert_eq!(run(), run());
}

#[test]
fn tsne_bad_input() {
    let x = uniform(&mut rng(1), 40, 0.0, 1.0);
    let xt = tensor(&x, &[10, 4]);
    assert!(Tsne::new(0).fit_transform(&xt).is_err());
    assert!(Tsne::new(5).fit_transform(&xt).is_err());
    assert!(
        Tsne::new(2)
            .with_perplexity(10.0)
            .fit_transform(&xt)
            .is_err()
    );
    assert!(
        Tsne::new(2)
            .with_perplexity(-1.0)
            .fit_transform(&xt)
            .is_err()
    );
    assert!(
        Tsne::new(2)
            .with_perplexity(3.0)
            .with_max_iter(0)
            .fit_transform(&xt)
            .is_err()
    );
    assert!(
        Tsne::new(2)
            .with_perplexity(3.0)
            .with_early_exaggeration(0.5)
            .fit_transform(&xt)
            .is_err()
    );
    let mut nan = x.clone();
    nan[3] = f32::NAN;
    assert!(
        Tsne::new(2)
            .with_perplexity(3.0)
            .fit_transform(&tensor(&nan, &[10, 4]))
            .is_err()
    );
    // Too many points for one n x n binding.
    let big = vec![0.5f32; 6000];
    assert!(
        Tsne::new(2)
            .fit_transform(&tensor(&big, &[6000, 1]))
            .is_err()
    );
    let t = Tsne::new(2);
    assert!(t.kl_divergence().is_err() && t.n_iter().is_err());
    assert!(
        trustworthiness(&xt, &xt, 5).is_err(),
        "n_neighbors >= n / 2"
    );
    assert!(trustworthiness(&xt, &tensor(&x[..20], &[5, 4]), 2).is_err());
}
