//! PCA against an f64 CPU eigen-decomposition of the sample covariance.

use super::common::*;
use cinder_device::Error;
use cinder_models::classical::Pca;

/// Checks the fitted model against the CPU reference: explained variances (relative
/// `rtol`), ratios, components orthonormal and equal to the CPU eigenvectors up to sign.
fn check_against_cpu(pca: &Pca, x: &[f32], n: usize, d: usize, p: usize, rtol: f64) {
    let cov = cpu_cov(x, n, d);
    let (w, v) = cpu_eig(&cov, d);
    let total: f64 = (0..d).map(|i| cov[i * d + i]).sum();
    let ev = read(pca.explained_variance().unwrap());
    assert_close(&ev, &w[..p], 1e-6 * w[0], rtol);
    let ratio = read(pca.explained_variance_ratio().unwrap());
    let want_ratio: Vec<f64> = w[..p].iter().map(|x| x / total).collect();
    assert_close(&ratio, &want_ratio, 1e-6, rtol);
    let comps = read(pca.components().unwrap());
    assert_eq!(comps.len(), p * d);
    for a in 0..p {
        for b in 0..=a {
            let dot: f64 = (0..d)
                .map(|k| comps[a * d + k] as f64 * comps[b * d + k] as f64)
                .sum();
            let want = if a == b { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-4, "components {a}, {b}: {dot}");
        }
        let dot: f64 = (0..d).map(|k| comps[a * d + k] as f64 * v[k * d + a]).sum();
        assert!(
            dot.abs() > 1.0 - 1e-4,
            "component {a} vs CPU eigenvector: |dot| {dot}"
        );
        // Sign convention: largest-magnitude entry positive.
        let big = (0..d)
            .max_by(|&i, &j| {
                comps[a * d + i]
                    .abs()
                    .partial_cmp(&comps[a * d + j].abs())
                    .unwrap()
            })
            .unwrap();
        assert!(comps[a * d + big] > 0.0);
    }
}

#[test]
fn pca_rank3_matrix() {
    // x = a b + offset with a [n, 3], b [3, d]: exactly three non-zero eigenvalues.
    let (n, d) = (50, 10);
    let mut r = rng(21);
    let a = normal(&mut r, n * 3);
    let b: Vec<f32> = normal(&mut r, 3 * d);
    let scale = [3.0f32, 1.5, 0.5];
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            x[i * d + j] = 2.0
                + (0..3)
                    .map(|k| scale[k] * a[i * 3 + k] * b[k * d + j])
                    .sum::<f32>();
        }
    }
    let xt = tensor(&x, &[n, d]);
    let mut pca = Pca::new(3);
    pca.fit(&xt).unwrap();
    check_against_cpu(&pca, &x, n, d, 3, 1e-4);
    let total: f32 = read(pca.explained_variance_ratio().unwrap()).iter().sum();
    assert!((total - 1.0).abs() < 1e-4, "rank 3: ratio total {total}");
    // Three components reconstruct the data exactly.
    let back = read(pca.inverse_transform(&pca.transform(&xt).unwrap()).unwrap());
    let want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    assert_close(&back, &want, 1e-3, 1e-4);
    assert!(read(pca.noise_variance().unwrap())[0].abs() < 1e-4);
    // Asking for 5: the last two variances are ~0.
    let mut p5 = Pca::new(5);
    p5.fit(&xt).unwrap();
    let ev = read(p5.explained_variance().unwrap());
    assert!(
        ev[3].abs() < 1e-4 * ev[0] && ev[4].abs() < 1e-4 * ev[0],
        "{ev:?}"
    );
}

/// `n` samples with `d` features whose variances decay geometrically, mixed by a fixed
/// rotation-like map so the eigenvectors are not axis-aligned.
fn decaying(seed: u64, n: usize, d: usize) -> Vec<f32> {
    let mut r = rng(seed);
    let z = normal(&mut r, n * d);
    let mix = uniform(&mut r, d * d, -0.3, 0.3);
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            let s = 0.8f32.powi(j as i32);
            let zj = z[i * d + j] * s;
            for k in 0..d {
                let m = if k == j { 1.0 } else { mix[j * d + k] };
                x[i * d + k] += zj * m;
            }
        }
    }
    x
}

#[test]
fn pca_subspace_iteration_matches_cpu() {
    // 96 features: above the direct-Jacobi limit, so subspace iteration runs.
    let (n, d, p) = (300, 96, 6);
    let x = decaying(22, n, d);
    let xt = tensor(&x, &[n, d]);
    let mut pca = Pca::new(p);
    let mut traces = Vec::new();
    pca.fit_with(&xt, |_, t| traces.push(t)).unwrap();
    assert!(pca.n_iter().unwrap() >= 2);
    assert_eq!(traces.len(), pca.n_iter().unwrap());
    // The Rayleigh trace of the block grows (up to f32 rounding) toward the sum of the
    // block's eigenvalues.
    for w in traces.windows(2) {
        assert!(
            w[1] >= w[0] * (1.0 - 1e-6),
            "trace fell {} -> {}",
            w[0],
            w[1]
        );
    }
    check_against_cpu(&pca, &x, n, d, p, 1e-4);
    // Whitened projections of the training data have unit variance.
    let mut w = Pca::new(p).with_whiten(true);
    w.fit(&xt).unwrap();
    let z = read(w.transform(&xt).unwrap());
    for c in 0..p {
        let var: f64 = (0..n).map(|i| (z[i * p + c] as f64).powi(2)).sum::<f64>() / (n - 1) as f64;
        assert!((var - 1.0).abs() < 1e-3, "component {c}: variance {var}");
    }
    // Whitening round-trips through inverse_transform like the plain projection.
    let a = read(w.inverse_transform(&w.transform(&xt).unwrap()).unwrap());
    let b = read(pca.inverse_transform(&pca.transform(&xt).unwrap()).unwrap());
    let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
    assert_close(&a, &b64, 1e-3, 1e-3);
}

#[test]
fn pca_bad_input() {
    let xt = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 7.0], &[3, 2]);
    assert!(matches!(
        Pca::new(0).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Pca::new(3).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Pca::new(1).fit(&tensor(&[1.0, 2.0], &[1, 2])),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Pca::new(1).fit(&tensor(&[1.0, f32::INFINITY, 3.0, 4.0], &[2, 2])),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(Pca::new(1).transform(&xt).is_err());
    let mut pca = Pca::new(1);
    pca.fit(&xt).unwrap();
    assert!(matches!(
        pca.transform(&tensor(&[1.0; 3], &[1, 3])),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        pca.inverse_transform(&tensor(&[1.0; 2], &[1, 2])),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn pca_subspace_iteration_rank_deficient() {
    // 80 features of rank 5: most of the iterated block is numerically dependent and comes
    // back from Gram-Schmidt as zeros; the 5 components must still be exact.
    let (n, d, r) = (120, 80, 5);
    let mut g = rng(23);
    let a = normal(&mut g, n * r);
    let b = normal(&mut g, r * d);
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            x[i * d + j] = (0..r)
                .map(|k| (k as f32 + 1.0) * a[i * r + k] * b[k * d + j])
                .sum::<f32>();
        }
    }
    let xt = tensor(&x, &[n, d]);
    let mut pca = Pca::new(r);
    pca.fit(&xt).unwrap();
    check_against_cpu(&pca, &x, n, d, r, 1e-4);
    let total: f32 = read(pca.explained_variance_ratio().unwrap()).iter().sum();
    assert!((total - 1.0).abs() < 1e-4, "rank {r}: ratio total {total}");
    let back = read(pca.inverse_transform(&pca.transform(&xt).unwrap()).unwrap());
    let want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    assert_close(&back, &want, 1e-3, 1e-3);
}
