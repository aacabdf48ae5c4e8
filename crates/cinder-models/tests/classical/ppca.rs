//! Probabilistic PCA against the f64 closed form of Tipping & Bishop.

use super::common::*;
use cinder_device::Error;
use cinder_models::classical::{PpcaMethod, ProbabilisticPca};

/// `n` samples of `W z + mu + sigma eps` with d = 8, q = 2, sigma = 0.3.
fn ppca_data(seed: u64, n: usize) -> Vec<f32> {
    let (d, q) = (8, 2);
    let mut r = rng(seed);
    let w = uniform(&mut r, d * q, -2.0, 2.0);
    let mu = uniform(&mut r, d, -1.0, 1.0);
    let z = normal(&mut r, n * q);
    let e = normal(&mut r, n * d);
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            x[i * d + j] = mu[j]
                + 0.3 * e[i * d + j]
                + (0..q).map(|k| w[j * q + k] * z[i * q + k]).sum::<f32>();
        }
    }
    x
}

/// CPU maximum-likelihood solution: (W W^T [d, d], sigma^2, mean log-likelihood).
fn cpu_ppca(x: &[f32], n: usize, d: usize, q: usize) -> (Vec<f64>, f64, f64) {
    let s: Vec<f64> = cpu_cov(x, n, d)
        .iter()
        .map(|v| v * (n - 1) as f64 / n as f64)
        .collect();
    let (lam, u) = cpu_eig(&s, d);
    let sigma2 = lam[q..].iter().sum::<f64>() / (d - q) as f64;
    let mut wwt = vec![0.0; d * d];
    for a in 0..d {
        for b in 0..d {
            wwt[a * d + b] = (0..q)
                .map(|k| u[a * d + k] * (lam[k] - sigma2) * u[b * d + k])
                .sum();
        }
    }
    // ln|C| and tr(C^{-1} S) from C's eigenvalues: C = U diag(lam_k or sigma2) U^T.
    let log_det: f64 = (0..d)
        .map(|k| if k < q { lam[k].ln() } else { sigma2.ln() })
        .sum();
    let tr: f64 = (0..d)
        .map(|k| lam[k] / if k < q { lam[k] } else { sigma2 })
        .sum();
    let ll = -0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + log_det + tr);
    (wwt, sigma2, ll)
}

fn wwt(w: &[f32], d: usize, q: usize) -> Vec<f32> {
    let mut out = vec![0.0; d * d];
    for a in 0..d {
        for b in 0..d {
            out[a * d + b] = (0..q).map(|k| w[a * q + k] * w[b * q + k]).sum();
        }
    }
    out
}

#[test]
fn ppca_closed_form_matches_cpu() {
    let (n, d, q) = (500, 8, 2);
    let x = ppca_data(51, n);
    let xt = tensor(&x, &[n, d]);
    let mut m = ProbabilisticPca::new(q);
    m.fit(&xt).unwrap();
    let (w_want, s2, ll) = cpu_ppca(&x, n, d, q);
    let s2_got = m.noise_variance().unwrap() as f64;
    assert!(
        (s2_got - s2).abs() < 1e-4 * s2 + 1e-6,
        "sigma^2 {s2_got} vs {s2}"
    );
    assert!(
        (s2_got - 0.09).abs() < 0.02,
        "sigma^2 {s2_got} far from the generating 0.09"
    );
    let w = read(m.loadings().unwrap());
    assert_close(&wwt(&w, d, q), &w_want, 1e-3, 1e-3);
    let score = m.score(&xt).unwrap() as f64;
    assert!(
        (score - ll).abs() < 1e-4 * ll.abs(),
        "score {score} vs CPU {ll}"
    );
    // Posterior means have the latent dimension.
    assert_eq!(m.transform(&xt).unwrap().shape(), &[n, q]);
}

#[test]
fn ppca_em_reaches_the_closed_form() {
    let (n, d, q) = (500, 8, 2);
    let x = ppca_data(52, n);
    let xt = tensor(&x, &[n, d]);
    let mut em = ProbabilisticPca::new(q)
        .with_method(PpcaMethod::Em)
        .with_seed(4);
    em.fit(&xt).unwrap();
    let (w_want, s2, ll) = cpu_ppca(&x, n, d, q);
    let h = em.history().unwrap();
    assert!(h.len() >= 3);
    for p in h.windows(2) {
        assert!(
            p[1] >= p[0] - 1e-5 * p[0].abs(),
            "EM log-likelihood fell {} -> {}",
            p[0],
            p[1]
        );
    }
    let s2_got = em.noise_variance().unwrap() as f64;
    assert!((s2_got - s2).abs() < 1e-3 * s2, "sigma^2 {s2_got} vs {s2}");
    assert_close(
        &wwt(&read(em.loadings().unwrap()), d, q),
        &w_want,
        1e-2,
        1e-2,
    );
    let score = em.score(&xt).unwrap() as f64;
    assert!(
        (score - ll).abs() < 1e-4 * ll.abs(),
        "score {score} vs CPU {ll}"
    );
}

#[test]
fn ppca_sample_has_model_covariance() {
    let (n, d, q) = (400, 8, 2);
    let x = ppca_data(53, n);
    let mut m = ProbabilisticPca::new(q);
    m.fit(&tensor(&x, &[n, d])).unwrap();
    let k = 5000;
    let s = read(m.sample(k, 7).unwrap());
    let cov = cpu_cov(&s, k, d);
    let w = wwt(&read(m.loadings().unwrap()), d, q);
    let s2 = m.noise_variance().unwrap();
    let mut err = 0.0;
    let mut norm = 0.0;
    for a in 0..d {
        for b in 0..d {
            let want = w[a * d + b] as f64 + if a == b { s2 as f64 } else { 0.0 };
            err += (cov[a * d + b] - want).powi(2);
            norm += want * want;
        }
    }
    assert!(
        (err / norm).sqrt() < 0.1,
        "relative covariance error {}",
        (err / norm).sqrt()
    );
    let means = col_means(&s, k, d);
    let mu = read(m.mean().unwrap());
    for j in 0..d {
        assert!((means[j] - mu[j] as f64).abs() < 0.1);
    }
}

#[test]
fn ppca_bad_input() {
    let xt = tensor(&ppca_data(54, 10), &[10, 8]);
    assert!(matches!(
        ProbabilisticPca::new(0).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        ProbabilisticPca::new(8).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    let mut nan = ppca_data(54, 10);
    nan[5] = f32::NAN;
    assert!(matches!(
        ProbabilisticPca::new(2).fit(&tensor(&nan, &[10, 8])),
        Err(Error::InvalidArgument { .. })
    ));
    // Rank-1 data with q = 1: nothing is left for the noise.
    let r1: Vec<f32> = (0..10).flat_map(|i| [i as f32, 2.0 * i as f32]).collect();
    assert!(matches!(
        ProbabilisticPca::new(1).fit(&tensor(&r1, &[10, 2])),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(ProbabilisticPca::new(2).score(&xt).is_err());
}
