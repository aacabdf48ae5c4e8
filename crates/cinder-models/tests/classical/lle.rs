//! Standard LLE against an f64 CPU reference of scikit-learn's algorithm: barycentre
//! weights by dense solves, `M = (I - W)^T (I - W)` and its Jacobi eigen-decomposition.

use super::common::*;
use cinder_device::Error;
use cinder_models::classical::LocallyLinearEmbedding;

/// The bottom eigenvectors `[p][n]` (2nd smallest first) and their eigenvalues.
fn reference(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    p: usize,
    reg: f64,
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let dist = cpu_dists(x, n, d);
    let nb = cpu_knn(&dist, n, k);
    let mut a = vec![0.0f64; n * n];
    for i in 0..n {
        let z: Vec<Vec<f64>> = nb[i]
            .iter()
            .map(|&j| {
                (0..d)
                    .map(|c| x[j * d + c] as f64 - x[i * d + c] as f64)
                    .collect()
            })
            .collect();
        let mut g = vec![0.0; k * k];
        for s in 0..k {
            for t in 0..k {
                g[s * k + t] = (0..d).map(|c| z[s][c] * z[t][c]).sum();
            }
        }
        let tr: f64 = (0..k).map(|s| g[s * k + s]).sum();
        let r = if tr > 0.0 { reg * tr } else { reg };
        for s in 0..k {
            g[s * k + s] += r;
        }
        let w = cpu_solve(&g, &vec![1.0; k], k, 1);
        let sw: f64 = w.iter().sum();
        a[i * n + i] = 1.0;
        for (s, &j) in nb[i].iter().enumerate() {
            a[i * n + j] -= w[s] / sw;
        }
    }
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = (0..n).map(|r| a[r * n + i] * a[r * n + j]).sum();
        }
    }
    let (w, v) = cpu_eig(&m, n);
    let cols: Vec<usize> = (0..p).map(|j| n - 2 - j).collect();
    let vecs = cols
        .iter()
        .map(|&c| (0..n).map(|i| v[i * n + c]).collect())
        .collect();
    (vecs, cols.iter().map(|&c| w[c]).collect())
}

fn check(n: usize, k: usize, p: usize, seed: u64, block: usize) {
    let d = 3;
    let x = swiss_roll(seed, n, 0.02);
    let (vecs, evals) = reference(&x, n, d, k, p, 1e-3);
    let mut lle = LocallyLinearEmbedding::new(k, p)
        .with_seed(seed)
        .with_block(block);
    let emb = read(lle.fit_transform(&tensor(&x, &[n, d])).unwrap());
    assert_eq!(emb.len(), n * p);
    let ev = lle.eigenvalues().unwrap();
    for c in 0..p {
        let cos = abs_cos(&emb, p, c, &vecs[c]);
        assert!(cos > 1.0 - 1e-4, "column {c}: |cos| {cos}");
        let norm: f64 = (0..n).map(|i| (emb[i * p + c] as f64).powi(2)).sum();
        assert!((norm - 1.0).abs() < 1e-4, "column {c} norm^2 {norm}");
        assert!(
            (ev[c] as f64 - evals[c]).abs() <= 1e-3 * evals[c],
            "eigenvalue {c}: {} vs {}",
            ev[c],
            evals[c]
        );
    }
    let want: f64 = evals.iter().sum();
    let err = lle.reconstruction_error().unwrap() as f64;
    assert!(
        (err - want).abs() <= 1e-3 * want,
        "reconstruction error {err}, want {want}"
    );
}

#[test]
fn lle_matches_cpu() {
    check(80, 8, 2, 11, 256);
}

#[test]
fn lle_blocked_factor_matches_cpu() {
    // Blocks of 24 rows: 4 blocks, the last one short.
    check(80, 8, 2, 11, 24);
}

#[test]
fn lle_bad_input() {
    let n = 20;
    let x = swiss_roll(3, n, 0.02);
    let t = tensor(&x, &[n, 3]);
    let is_invalid =
        |r: Result<cinder_autograd::Tensor, Error>| matches!(r, Err(Error::InvalidArgument { .. }));
    let lle = LocallyLinearEmbedding::new;
    assert!(lle(5, 2).reconstruction_error().is_err());
    assert!(lle(5, 2).eigenvalues().is_err());
    assert!(is_invalid(lle(0, 2).fit_transform(&t)));
    assert!(is_invalid(lle(n, 2).fit_transform(&t)));
    assert!(is_invalid(lle(5, 0).fit_transform(&t)));
    assert!(is_invalid(lle(5, n - 1).fit_transform(&t)));
    assert!(is_invalid(lle(5, 2).with_reg(0.0).fit_transform(&t)));
    assert!(is_invalid(lle(5, 2).with_reg(f32::NAN).fit_transform(&t)));
    assert!(is_invalid(lle(5, 2).with_shift(-1.0).fit_transform(&t)));
    assert!(is_invalid(lle(5, 2).with_max_iter(0).fit_transform(&t)));
    assert!(is_invalid(lle(5, 2).with_block(0).fit_transform(&t)));
    let mut bad = x.clone();
    bad[4] = f32::INFINITY;
    assert!(is_invalid(lle(5, 2).fit_transform(&tensor(&bad, &[n, 3]))));
    let big = vec![0.5f32; 5793];
    assert!(is_invalid(
        lle(5, 2).fit_transform(&tensor(&big, &[5793, 1]))
    ));
}
