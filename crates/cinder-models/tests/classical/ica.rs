//! FastICA: source recovery on a known mixture (Amari index), whitening against an f64 CPU
//! eigen-decomposition, bad input.

use super::common::*;
use cinder_device::Error;
use cinder_models::classical::{FastIca, IcaAlgorithm};

/// splitmix64, so that `scripts/sklearn_compare/ica_nmf.py` can rebuild the same sources.
fn splitmix(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// The mixing matrix of the test (rows: observed signals, columns: sources).
pub const MIX: [[f64; 4]; 4] = [
    [1.0, 0.5, 0.3, 0.2],
    [0.4, 1.0, 0.6, 0.1],
    [0.2, 0.3, 1.0, 0.5],
    [0.6, 0.2, 0.1, 1.0],
];

/// Four non-Gaussian sources over `n` samples (sine, square, sawtooth, Laplace from
/// splitmix64 with seed 42), `[n, 4]` row-major f64, and their mixture `x = s MIX^T`
/// (`[n, 4]`, f32).
pub fn mixture(n: usize) -> (Vec<f64>, Vec<f32>) {
    let mut st = 42u64;
    let mut s = vec![0.0f64; n * 4];
    for i in 0..n {
        let t = 8.0 * i as f64 / n as f64;
        s[i * 4] = (2.0 * t).sin();
        s[i * 4 + 1] = (3.0 * t).sin().signum();
        s[i * 4 + 2] = 2.0 * ((1.7 * t) % 1.0) - 1.0;
        let u = splitmix(&mut st) - 0.5;
        s[i * 4 + 3] = -u.signum() * (1.0 - 2.0 * u.abs()).ln();
    }
    let mut x = vec![0.0f32; n * 4];
    for i in 0..n {
        for (r, row) in MIX.iter().enumerate() {
            x[i * 4 + r] = (0..4).map(|c| row[c] * s[i * 4 + c]).sum::<f64>() as f32;
        }
    }
    (s, x)
}

/// Amari index of `p` (`[k, k]`): 0 for a scaled permutation, at most 1
/// (`1 / (2k(k-1))` times the sum over rows and columns of `sum |p| / max |p| - 1`).
pub fn amari(p: &[f64], k: usize) -> f64 {
    let a: Vec<f64> = p.iter().map(|v| v.abs()).collect();
    let mut s = 0.0;
    for i in 0..k {
        let row = &a[i * k..(i + 1) * k];
        s += row.iter().sum::<f64>() / row.iter().cloned().fold(0.0, f64::max) - 1.0;
        let col: Vec<f64> = (0..k).map(|j| a[j * k + i]).collect();
        s += col.iter().sum::<f64>() / col.iter().cloned().fold(0.0, f64::max) - 1.0;
    }
    s / (2.0 * k as f64 * (k as f64 - 1.0))
}

#[test]
fn ica_separates_known_sources() {
    let n = 4000;
    let (_, x) = mixture(n);
    let xt = tensor(&x, &[n, 4]);
    for alg in [IcaAlgorithm::Parallel, IcaAlgorithm::Deflation] {
        let mut ica = FastIca::new(4).with_algorithm(alg).with_seed(3);
        let s = read(ica.fit_transform(&xt).unwrap());
        let c = read(ica.components().unwrap()); // [4, 4]
        // components @ MIX: a scaled permutation when the sources are recovered.
        let mut p = vec![0.0f64; 16];
        for i in 0..4 {
            for j in 0..4 {
                p[i * 4 + j] = (0..4).map(|r| c[i * 4 + r] as f64 * MIX[r][j]).sum();
            }
        }
        let ai = amari(&p, 4);
        eprintln!(
            "ica {alg:?}: Amari index {ai:.5} after {} iterations",
            ica.n_iter().unwrap()
        );
        assert!(ai <= 0.05, "{alg:?}: Amari index {ai}");
        assert!(ica.n_iter().unwrap() < 200, "{alg:?} did not converge");
        // Unit-variance sources (ddof 0), uncorrelated.
        let m = col_means(&s, n, 4);
        for a in 0..4 {
            assert!(m[a].abs() < 1e-4, "source mean {}", m[a]);
            for b in 0..4 {
                let cov: f64 = (0..n)
                    .map(|i| (s[i * 4 + a] as f64 - m[a]) * (s[i * 4 + b] as f64 - m[b]))
                    .sum::<f64>()
                    / n as f64;
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((cov - want).abs() < 2e-3, "source cov {a} {b}: {cov}");
            }
        }
        // transform reproduces fit_transform; the mixing matrix inverts the unmixing.
        let s2 = read(ica.transform(&xt).unwrap());
        let want: Vec<f64> = s.iter().map(|&v| v as f64).collect();
        assert_close(&s2, &want, 1e-4, 1e-4);
        let mix = read(ica.mixing().unwrap()); // [4, 4]
        for i in 0..4 {
            for j in 0..4 {
                let v: f64 = (0..4)
                    .map(|r| c[i * 4 + r] as f64 * mix[r * 4 + j] as f64)
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (v - want).abs() < 1e-3,
                    "components @ mixing [{i},{j}] = {v}"
                );
            }
        }
    }
}

#[test]
fn ica_whitening_matches_cpu_eigenvectors() {
    // 8 correlated features, 3 components: the unmixing rows must lie in the span of the
    // covariance's top-3 eigenvectors and whiten the data (C cov C^T = I with ddof 0).
    let (n, d, k) = (600, 8, 3);
    let mut r = rng(5);
    let z = uniform(&mut r, n * d, -1.0, 1.0);
    let a = normal(&mut r, d * d);
    let scale = [4.0f32, 3.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1];
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            x[i * d + j] = 1.5
                + (0..d)
                    .map(|c| scale[c] * z[i * d + c] * a[c * d + j])
                    .sum::<f32>();
        }
    }
    let mut ica = FastIca::new(k).with_seed(1);
    ica.fit(&tensor(&x, &[n, d])).unwrap();
    let c = read(ica.components().unwrap());
    let mean = read(ica.mean().unwrap());
    assert_close(&mean, &col_means(&x, n, d), 1e-4, 1e-4);
    let cov = cpu_cov(&x, n, d);
    let (_, v) = cpu_eig(&cov, d);
    for i in 0..k {
        // Residual of row i outside the top-k eigenvectors.
        let row: Vec<f64> = (0..d).map(|j| c[i * d + j] as f64).collect();
        let mut res = row.clone();
        for e in 0..k {
            let dot: f64 = (0..d).map(|j| row[j] * v[j * d + e]).sum();
            for j in 0..d {
                res[j] -= dot * v[j * d + e];
            }
        }
        let rn: f64 = res.iter().map(|v| v * v).sum::<f64>().sqrt();
        let nn: f64 = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(rn < 1e-3 * nn, "row {i}: residual {rn} of {nn}");
        for j in 0..k {
            let mut q = 0.0;
            for a in 0..d {
                for b in 0..d {
                    q += c[i * d + a] as f64 * cov[a * d + b] * c[j * d + b] as f64;
                }
            }
            q *= (n - 1) as f64 / n as f64;
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((q - want).abs() < 1e-3, "C cov C^T [{i},{j}] = {q}");
        }
    }
}

#[test]
fn ica_without_whitening_uses_the_data_as_given() {
    // Already white data: the mixture whitened on the CPU side by its exact inverse.
    let n = 2000;
    let (s, _) = mixture(n);
    let mut xs = vec![0.0f32; n * 2];
    // Two standardized sources, rotated by 30 degrees.
    let (cs, sn) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    let m = col_means(&s.iter().map(|&v| v as f32).collect::<Vec<_>>(), n, 4);
    let sd: Vec<f64> = [1usize, 3]
        .iter()
        .map(|&j| ((0..n).map(|i| (s[i * 4 + j] - m[j]).powi(2)).sum::<f64>() / n as f64).sqrt())
        .collect();
    for i in 0..n {
        let a = (s[i * 4 + 1] - m[1]) / sd[0];
        let b = (s[i * 4 + 3] - m[3]) / sd[1];
        xs[i * 2] = (cs * a - sn * b) as f32;
        xs[i * 2 + 1] = (sn * a + cs * b) as f32;
    }
    let mut ica = FastIca::new(2).with_whiten(false);
    ica.fit(&tensor(&xs, &[n, 2])).unwrap();
    let c = read(ica.components().unwrap());
    let p: Vec<f64> = [
        c[0] as f64 * cs + c[1] as f64 * sn,
        -(c[0] as f64) * sn + c[1] as f64 * cs,
        c[2] as f64 * cs + c[3] as f64 * sn,
        -(c[2] as f64) * sn + c[3] as f64 * cs,
    ]
    .to_vec();
    assert!(amari(&p, 2) < 0.05, "no whitening: {p:?}");
    assert_eq!(read(ica.mean().unwrap()), vec![0.0; 2]);
}

#[test]
fn ica_bad_input() {
    let (_, x) = mixture(100);
    let xt = tensor(&x, &[100, 4]);
    let inv = |r: Result<&mut FastIca, Error>| matches!(r, Err(Error::InvalidArgument { .. }));
    assert!(inv(FastIca::new(0).fit(&xt)));
    assert!(inv(FastIca::new(5).fit(&xt)));
    assert!(inv(FastIca::new(2).with_whiten(false).fit(&xt)));
    assert!(inv(FastIca::new(2).with_max_iter(0).fit(&xt)));
    assert!(inv(FastIca::new(2).with_tol(-1.0).fit(&xt)));
    let mut bad = x.clone();
    bad[7] = f32::NAN;
    assert!(inv(FastIca::new(2).fit(&tensor(&bad, &[100, 4]))));
    assert!(inv(FastIca::new(2).fit(&tensor(&x[..4], &[1, 4]))));
    // Rank 2 data cannot be whitened to 3 components.
    let flat: Vec<f32> = (0..100 * 4)
        .map(|i| [1.0, 2.0, 3.0, 6.0][i % 4] * x[(i / 4) * 4] + (i % 2) as f32 * x[(i / 4) * 4 + 1])
        .collect();
    assert!(inv(FastIca::new(3).fit(&tensor(&flat, &[100, 4]))));
    let unfitted = FastIca::new(2);
    assert!(unfitted.transform(&xt).is_err());
    assert!(unfitted.components().is_err());
    assert!(unfitted.mixing().is_err());
    assert!(unfitted.mean().is_err());
    assert!(unfitted.n_iter().is_err());
    let mut ica = FastIca::new(2);
    ica.fit(&xt).unwrap();
    assert!(matches!(
        ica.transform(&tensor(&x[..30], &[10, 3])),
        Err(Error::ShapeMismatch { .. })
    ));
}
