//! Isomap against an f64 CPU reference of scikit-learn's algorithm: the symmetrized k-NN
//! graph, Floyd-Warshall, the double-centred kernel and its Jacobi eigen-decomposition.

use super::common::*;
use cinder_device::Error;
use cinder_models::classical::Isomap;

struct Reference {
    components: usize,
    geo: Vec<f64>,
    /// Embedding columns `[p][n]`, scaled by sqrt(eigenvalue), sign as scikit-learn.
    emb: Vec<Vec<f64>>,
    evals: Vec<f64>,
    error: f64,
}

fn reference(x: &[f32], n: usize, d: usize, k: usize, p: usize) -> Reference {
    let dist = cpu_dists(x, n, d);
    let nb = cpu_knn(&dist, n, k);
    let mut g = vec![f64::INFINITY; n * n];
    for i in 0..n {
        g[i * n + i] = 0.0;
        for &j in &nb[i] {
            g[i * n + j] = dist[i * n + j];
            g[j * n + i] = dist[i * n + j];
        }
    }
    // scikit-learn's _fix_connected_components: components by flood fill, then for every
    // pair (a > b) the first closest pair of points joined both ways.
    let mut lab = vec![usize::MAX; n];
    let mut c = 0;
    for s in 0..n {
        if lab[s] != usize::MAX {
            continue;
        }
        let mut stack = vec![s];
        lab[s] = c;
        while let Some(i) = stack.pop() {
            for j in 0..n {
                if lab[j] == usize::MAX && g[i * n + j].is_finite() {
                    lab[j] = c;
                    stack.push(j);
                }
            }
        }
        c += 1;
    }
    for a in 0..c {
        for b in 0..a {
            let mut best = (f64::INFINITY, 0, 0);
            for p in (0..n).filter(|&p| lab[p] == a) {
                for q in (0..n).filter(|&q| lab[q] == b) {
                    if dist[p * n + q] < best.0 {
                        best = (dist[p * n + q], p, q);
                    }
                }
            }
            g[best.1 * n + best.2] = best.0;
            g[best.2 * n + best.1] = best.0;
        }
    }
    for m in 0..n {
        for i in 0..n {
            for j in 0..n {
                let t = g[i * n + m] + g[m * n + j];
                if t < g[i * n + j] {
                    g[i * n + j] = t;
                }
            }
        }
    }
    let h: Vec<f64> = g.iter().map(|v| -0.5 * v * v).collect();
    let r: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| h[i * n + j]).sum::<f64>() / n as f64)
        .collect();
    let m = r.iter().sum::<f64>() / n as f64;
    let kc: Vec<f64> = (0..n * n).map(|e| h[e] - r[e / n] - r[e % n] + m).collect();
    let (w, v) = cpu_eig(&kc, n);
    let emb = (0..p)
        .map(|c| {
            let col: Vec<f64> = (0..n).map(|i| v[i * n + c]).collect();
            let big = col
                .iter()
                .copied()
                .max_by(|a, b| a.abs().partial_cmp(&b.abs()).unwrap())
                .unwrap();
            col.iter().map(|a| a * big.signum() * w[c].sqrt()).collect()
        })
        .collect();
    let tot: f64 = kc.iter().map(|a| a * a).sum();
    let top: f64 = w[..p].iter().map(|a| a * a).sum();
    Reference {
        components: c,
        geo: g,
        emb,
        evals: w[..p].to_vec(),
        error: (tot - top).sqrt() / n as f64,
    }
}

fn check(n: usize, k: usize, p: usize, seed: u64) {
    assert_eq!(check_data(&swiss_roll(seed, n, 0.02), n, k, p, seed), 1);
}

/// Checks the fit against the reference; returns the number of graph components.
fn check_data(x: &[f32], n: usize, k: usize, p: usize, seed: u64) -> usize {
    let d = 3;
    let x = x.to_vec();
    let want = reference(&x, n, d, k, p);
    let mut iso = Isomap::new(k, p).with_seed(seed);
    let emb = read(iso.fit_transform(&tensor(&x, &[n, d])).unwrap());
    assert_eq!(emb.len(), n * p);
    assert_eq!(iso.n_graph_components().unwrap(), want.components);
    let geo = read(iso.dist_matrix().unwrap());
    assert_close(&geo, &want.geo, 1e-4, 1e-4);
    let ev = read(iso.eigenvalues().unwrap());
    assert_close(&ev, &want.evals, 1e-6, 1e-4);
    for c in 0..p {
        let scale = want.evals[0].sqrt();
        let got: Vec<f32> = (0..n).map(|i| emb[i * p + c]).collect();
        assert_close(&got, &want.emb[c], 2e-3 * scale, 1e-3);
    }
    let err = iso.reconstruction_error().unwrap() as f64;
    assert!(
        (err - want.error).abs() <= 1e-3 * want.error,
        "reconstruction error {err}, want {}",
        want.error
    );
    want.components
}

#[test]
fn isomap_direct_matches_cpu() {
    // n <= 64: the kernel goes to the Jacobi kernel whole.
    check(60, 6, 2, 1);
}

#[test]
fn isomap_subspace_matches_cpu() {
    // n > 64: block subspace iteration.
    check(120, 8, 2, 2);
}

#[test]
fn isomap_joins_components() {
    // Two rolls far apart, each cut up by a 3-NN graph: the components are joined by their
    // closest pairs as scikit-learn does.
    let n = 50;
    let mut x = swiss_roll(4, n, 0.02);
    for v in x.iter_mut().skip(3 * (n / 2)) {
        *v += 4.0;
    }
    let c = check_data(&x, n, 3, 2, 4);
    assert!(c >= 2, "{c} components");
}

#[test]
fn isomap_bad_input() {
    let n = 20;
    let x = swiss_roll(3, n, 0.02);
    let t = tensor(&x, &[n, 3]);
    let is_invalid =
        |r: Result<cinder_autograd::Tensor, Error>| matches!(r, Err(Error::InvalidArgument { .. }));
    assert!(Isomap::new(5, 2).reconstruction_error().is_err());
    assert!(Isomap::new(5, 2).dist_matrix().is_err());
    assert!(Isomap::new(5, 2).n_graph_components().is_err());
    assert!(is_invalid(Isomap::new(0, 2).fit_transform(&t)));
    assert!(is_invalid(Isomap::new(n, 2).fit_transform(&t)));
    assert!(is_invalid(Isomap::new(5, 0).fit_transform(&t)));
    assert!(is_invalid(Isomap::new(5, n).fit_transform(&t)));
    assert!(is_invalid(
        Isomap::new(5, 2).with_max_iter(0).fit_transform(&t)
    ));
    let mut bad = x.clone();
    bad[7] = f32::NAN;
    assert!(is_invalid(
        Isomap::new(5, 2).fit_transform(&tensor(&bad, &[n, 3]))
    ));
    assert!(
        Isomap::new(5, 2)
            .fit_transform(&tensor(&x, &[3 * n]))
            .is_err()
    );
    // 1-NN on 600 points spread on a line in pairs: 300 components, more than are joined.
    let pairs: Vec<f32> = (0..600)
        .map(|i| (i / 2) as f32 * 10.0 + (i % 2) as f32)
        .collect();
    let e = Isomap::new(1, 2).fit_transform(&tensor(&pairs, &[600, 1]));
    assert!(is_invalid(e));
    // Too many points for one [n, n] binding (the check comes before any n x n work).
    let big = vec![0.5f32; 5793];
    let e = Isomap::new(5, 2).fit_transform(&tensor(&big, &[5793, 1]));
    assert!(is_invalid(e));
}
