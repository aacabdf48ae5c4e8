//! Gaussian mixtures against CPU statistics and CPU log-densities in f64.

use super::common::*;
use cinder_device::Error;
use cinder_models::classical::{CovarianceType, GaussianMixture};

/// Three well-separated 2-D blobs with different shapes (full covariances), sizes 60/90/150,
/// interleaved. Returns the data and the true blob of each point.
fn blobs(seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut r = rng(seed);
    let centers = [(-20.0f32, 0.0f32), (20.0, 5.0), (0.0, 30.0)];
    // Lower-triangular factors of the blob covariances.
    let factors = [(1.0f32, 0.0f32, 0.5f32), (2.0, 1.0, 0.7), (0.5, -0.4, 1.5)];
    let sizes = [60usize, 90, 150];
    let mut x = Vec::new();
    let mut truth = Vec::new();
    let z = normal(&mut r, 2 * 300);
    let mut zi = 0;
    let mut left = sizes;
    while left.iter().any(|&s| s > 0) {
        for c in 0..3 {
            if left[c] == 0 {
                continue;
            }
            left[c] -= 1;
            let (a, b, e) = factors[c];
            let (z0, z1) = (z[zi], z[zi + 1]);
            zi += 2;
            x.push(centers[c].0 + a * z0);
            x.push(centers[c].1 + b * z0 + e * z1);
            truth.push(c);
        }
    }
    (x, truth)
}

/// Per-blob weight, mean and biased covariance (f64), in blob order.
fn blob_stats(x: &[f32], truth: &[usize], c: usize) -> (f64, [f64; 2], [f64; 4]) {
    let idx: Vec<usize> = (0..truth.len()).filter(|&i| truth[i] == c).collect();
    let m = idx.len() as f64;
    let mu = [0, 1].map(|j| idx.iter().map(|&i| x[i * 2 + j] as f64).sum::<f64>() / m);
    let mut cov = [0.0; 4];
    for &i in &idx {
        let dx = [x[i * 2] as f64 - mu[0], x[i * 2 + 1] as f64 - mu[1]];
        for a in 0..2 {
            for b in 0..2 {
                cov[a * 2 + b] += dx[a] * dx[b] / m;
            }
        }
    }
    (m / truth.len() as f64, mu, cov)
}

/// log N(x | mu, cov) for 2-D, f64.
fn log_normal2(x: [f64; 2], mu: [f64; 2], cov: [f64; 4]) -> f64 {
    let det = cov[0] * cov[3] - cov[1] * cov[2];
    let dx = [x[0] - mu[0], x[1] - mu[1]];
    let q =
        (cov[3] * dx[0] * dx[0] - (cov[1] + cov[2]) * dx[0] * dx[1] + cov[0] * dx[1] * dx[1]) / det;
    -0.5 * (q + det.ln() + 2.0 * (2.0 * std::f64::consts::PI).ln())
}

/// Maps fitted components to blobs by the mean nearest to each blob's mean.
fn match_components(means: &[f32], x: &[f32], truth: &[usize]) -> Vec<usize> {
    (0..3)
        .map(|c| {
            let (_, mu, _) = blob_stats(x, truth, c);
            (0..3)
                .min_by(|&a, &b| {
                    let da = (means[a * 2] as f64 - mu[0]).powi(2)
                        + (means[a * 2 + 1] as f64 - mu[1]).powi(2);
                    let db = (means[b * 2] as f64 - mu[0]).powi(2)
                        + (means[b * 2 + 1] as f64 - mu[1]).powi(2);
                    da.partial_cmp(&db).unwrap()
                })
                .unwrap()
        })
        .collect()
}

#[test]
fn gmm_full_recovers_blobs() {
    let (x, truth) = blobs(41);
    let n = truth.len();
    let xt = tensor(&x, &[n, 2]);
    let mut g = GaussianMixture::new(3).with_seed(1);
    g.fit(&xt).unwrap();
    assert!(g.converged().unwrap());
    let (w, means, covs) = (
        read(g.weights().unwrap()),
        read(g.means().unwrap()),
        read(g.covariances().unwrap()),
    );
    let map = match_components(&means, &x, &truth);
    let mut seen = map.clone();
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2]);
    for (c, &k) in map.iter().enumerate() {
        // Separated blobs: responsibilities are 0/1, so the MLE is the blob's statistics.
        let (wc, mu, cov) = blob_stats(&x, &truth, c);
        assert!((w[k] as f64 - wc).abs() < 1e-4, "weight {k}");
        assert_close(&means[k * 2..k * 2 + 2], &mu, 1e-3, 1e-4);
        let cov_reg = [cov[0] + 1e-6, cov[1], cov[2], cov[3] + 1e-6];
        assert_close(&covs[k * 4..k * 4 + 4], &cov_reg, 1e-3, 1e-3);
    }
    // Per-sample log-likelihood against the CPU mixture density with the fitted params.
    let ss = read(g.score_samples(&xt).unwrap());
    let mut mean_ll = 0.0;
    for i in 0..n {
        let xi = [x[i * 2] as f64, x[i * 2 + 1] as f64];
        let terms: Vec<f64> = (0..3)
            .map(|k| {
                let mu = [means[k * 2] as f64, means[k * 2 + 1] as f64];
                let cov = [0, 1, 2, 3].map(|j| covs[k * 4 + j] as f64);
                (w[k] as f64).ln() + log_normal2(xi, mu, cov)
            })
            .collect();
        let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln();
        assert!(
            (ss[i] as f64 - lse).abs() < 1e-3 + 1e-4 * lse.abs(),
            "sample {i}: {} vs {lse}",
            ss[i]
        );
        mean_ll += lse / n as f64;
    }
    let score = g.score(&xt).unwrap() as f64;
    assert!((score - mean_ll).abs() < 1e-4 * mean_ll.abs());
    assert!((*g.history().unwrap().last().unwrap() as f64 - mean_ll).abs() < 1e-4 * mean_ll.abs());
    // Labels, probabilities, BIC.
    let labels = read_u32(g.predict(&xt).unwrap());
    for i in 0..n {
        assert_eq!(labels[i] as usize, map[truth[i]], "point {i}");
    }
    let proba = read(g.predict_proba(&xt).unwrap());
    for i in 0..n {
        let s: f32 = proba[i * 3..i * 3 + 3].iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
    let n_params = 3.0 * 3.0 + 3.0 * 2.0 + 2.0;
    let bic = -2.0 * mean_ll * n as f64 + n_params * (n as f64).ln();
    assert!((g.bic(&xt).unwrap() as f64 - bic).abs() < 1e-3 * bic.abs());
}

/// Two overlapping 3-D clusters: EM needs several iterations.
fn overlapping(seed: u64, n: usize) -> Vec<f32> {
    let mut r = rng(seed);
    let z = normal(&mut r, n * 3);
    let mut x = Vec::with_capacity(n * 3);
    for i in 0..n {
        let shift = if i % 3 == 0 { 1.5 } else { -0.5 };
        let s = if i % 3 == 0 { 0.6 } else { 1.2 };
        for j in 0..3 {
            x.push(z[i * 3 + j] * s + shift * (j as f32 + 1.0) * 0.5);
        }
    }
    x
}

#[test]
fn gmm_log_likelihood_is_monotone() {
    let n = 400;
    let x = overlapping(42, n);
    let xt = tensor(&x, &[n, 3]);
    for t in [CovarianceType::Full, CovarianceType::Diag] {
        let mut g = GaussianMixture::new(3)
            .with_covariance_type(t)
            .with_tol(1e-6)
            .with_max_iter(60)
            .with_seed(5);
        let mut seen = Vec::new();
        g.fit_with(&xt, |it, ll| seen.push((it, ll))).unwrap();
        let h = g.history().unwrap();
        assert!(h.len() >= 4, "{t:?}: only {} iterations", h.len());
        assert_eq!(seen.len(), h.len());
        assert_eq!(h.len(), g.n_iter().unwrap() + 1);
        assert_eq!(seen[0].0, 0);
        for w in h.windows(2) {
            assert!(
                w[1] >= w[0] - 1e-5 * w[0].abs(),
                "{t:?}: log-likelihood fell {} -> {}",
                w[0],
                w[1]
            );
        }
        assert!(h[h.len() - 1] > h[0], "{t:?}: no progress");
        // The final score is the last history entry.
        let s = g.score(&xt).unwrap();
        assert!((s - h[h.len() - 1]).abs() < 1e-4 * s.abs());
    }
}

#[test]
fn gmm_diag_matches_cpu_density() {
    let n = 300;
    let x = overlapping(43, n);
    let xt = tensor(&x, &[n, 3]);
    let mut g = GaussianMixture::new(2)
        .with_covariance_type(CovarianceType::Diag)
        .with_seed(2);
    g.fit(&xt).unwrap();
    let (w, means, var) = (
        read(g.weights().unwrap()),
        read(g.means().unwrap()),
        read(g.covariances().unwrap()),
    );
    assert_eq!(var.len(), 6);
    assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let ss = read(g.score_samples(&xt).unwrap());
    for i in 0..n {
        let terms: Vec<f64> = (0..2)
            .map(|k| {
                (w[k] as f64).ln()
                    + (0..3)
                        .map(|j| {
                            let v = var[k * 3 + j] as f64;
                            let dx = x[i * 3 + j] as f64 - means[k * 3 + j] as f64;
                            -0.5 * (dx * dx / v + v.ln() + (2.0 * std::f64::consts::PI).ln())
                        })
                        .sum::<f64>()
            })
            .collect();
        let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln();
        assert!(
            (ss[i] as f64 - lse).abs() < 1e-3 + 1e-4 * lse.abs(),
            "sample {i}"
        );
    }
    // An M-step fixed point: one CPU M-step from the GPU responsibilities reproduces the
    // variances (up to the convergence tolerance).
    let proba = read(g.predict_proba(&xt).unwrap());
    for k in 0..2 {
        let nk: f64 = (0..n).map(|i| proba[i * 2 + k] as f64).sum();
        for j in 0..3 {
            let mu: f64 = (0..n)
                .map(|i| proba[i * 2 + k] as f64 * x[i * 3 + j] as f64)
                .sum::<f64>()
                / nk;
            let v: f64 = (0..n)
                .map(|i| proba[i * 2 + k] as f64 * (x[i * 3 + j] as f64 - mu).powi(2))
                .sum::<f64>()
                / nk;
            assert!((means[k * 3 + j] as f64 - mu).abs() < 5e-2, "mean {k} {j}");
            assert!((var[k * 3 + j] as f64 - v).abs() < 5e-2 * v, "var {k} {j}");
        }
    }
}

#[test]
fn gmm_sample_follows_the_model() {
    let (x, truth) = blobs(44);
    let xt = tensor(&x, &[truth.len(), 2]);
    let mut g = GaussianMixture::new(3).with_seed(3);
    g.fit(&xt).unwrap();
    let m = 3000;
    let (s, comp) = g.sample(m, 9).unwrap();
    assert_eq!(s.shape(), &[m, 2]);
    let (s, comp) = (read(&s), read_u32(&comp));
    let (w, means, covs) = (
        read(g.weights().unwrap()),
        read(g.means().unwrap()),
        read(g.covariances().unwrap()),
    );
    for k in 0..3 {
        let idx: Vec<usize> = (0..m).filter(|&i| comp[i] as usize == k).collect();
        let frac = idx.len() as f64 / m as f64;
        assert!(
            (frac - w[k] as f64).abs() < 0.04,
            "component {k}: {frac} vs {}",
            w[k]
        );
        for j in 0..2 {
            let mean = idx.iter().map(|&i| s[i * 2 + j] as f64).sum::<f64>() / idx.len() as f64;
            let sd = (covs[k * 4 + j * 3] as f64).sqrt();
            assert!(
                (mean - means[k * 2 + j] as f64).abs() < 0.2 * sd + 0.05,
                "component {k} dim {j}"
            );
            let var = idx
                .iter()
                .map(|&i| (s[i * 2 + j] as f64 - mean).powi(2))
                .sum::<f64>()
                / idx.len() as f64;
            assert!(
                (var / (sd * sd) - 1.0).abs() < 0.2,
                "component {k} dim {j}: var {var}"
            );
        }
    }
}

#[test]
fn gmm_bad_input() {
    let xt = tensor(
        &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
        &[6, 2],
    );
    assert!(matches!(
        GaussianMixture::new(7).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        GaussianMixture::new(0).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        GaussianMixture::new(2).with_reg_covar(-1.0).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    // Every cluster is three copies of one point: with no regularization the covariances
    // are zero, which is not positive definite.
    match GaussianMixture::new(2).with_reg_covar(0.0).fit(&xt) {
        Err(Error::InvalidArgument { msg, .. }) => {
            assert!(msg.contains("positive definite"), "{msg}")
        }
        other => panic!("expected a non-PD error, got {:?}", other.map(|_| ())),
    }
    match GaussianMixture::new(2)
        .with_reg_covar(0.0)
        .with_covariance_type(CovarianceType::Diag)
        .fit(&xt)
    {
        Err(Error::InvalidArgument { msg, .. }) => {
            assert!(msg.contains("positive definite"), "{msg}")
        }
        other => panic!("expected a non-PD error, got {:?}", other.map(|_| ())),
    }
    // The default reg_covar makes the same data fit.
    let mut g = GaussianMixture::new(2);
    g.fit(&xt).unwrap();
    assert!(matches!(
        g.predict(&tensor(&[1.0; 3], &[1, 3])),
        Err(Error::ShapeMismatch { .. })
    ));
    let nan = tensor(&[f32::NAN, 1.0, 2.0, 3.0], &[2, 2]);
    assert!(matches!(
        GaussianMixture::new(1).fit(&nan),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(GaussianMixture::new(1).score(&xt).is_err());
    assert!(g.sample(0, 1).is_err());
}

#[test]
fn gmm_n_init_keeps_the_best_of_its_initializations() {
    // Six components on three blobs: the k-means starts differ, so the fits end at different
    // log-likelihoods; n_init = 4 must keep exactly the best of the four single fits seeded
    // as `init_seed(seed, i)`.
    let (x, truth) = blobs(43);
    let xt = tensor(&x, &[truth.len(), 2]);
    let seed = 5;
    let singles: Vec<(f32, Vec<f32>)> = (0..4)
        .map(|i| {
            let mut g = GaussianMixture::new(6)
                .with_max_iter(20)
                .with_seed(GaussianMixture::init_seed(seed, i));
            g.fit(&xt).unwrap();
            (
                *g.history().unwrap().last().unwrap(),
                read(g.means().unwrap()),
            )
        })
        .collect();
    let best = singles
        .iter()
        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap())
        .unwrap();
    let mut g = GaussianMixture::new(6)
        .with_max_iter(20)
        .with_n_init(4)
        .with_seed(seed);
    let mut starts = 0;
    g.fit_with(&xt, |it, _| starts += usize::from(it == 0))
        .unwrap();
    assert_eq!(
        starts, 4,
        "one progress call at iteration 0 per initialization"
    );
    let ll = *g.history().unwrap().last().unwrap();
    assert_eq!(
        ll,
        best.0,
        "kept {ll}, singles {:?}",
        singles.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    assert_eq!(read(g.means().unwrap()), best.1);
    assert!(singles.iter().all(|s| s.0 <= ll));
    // n_init = 1 is the plain fit with the seed itself.
    assert_eq!(GaussianMixture::init_seed(seed, 0), seed);
    assert!(matches!(
        GaussianMixture::new(2).with_n_init(0).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
}
