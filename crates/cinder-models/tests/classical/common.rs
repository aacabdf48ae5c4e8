//! Helpers: the device, seeded data, f64 CPU linear algebra.
#![allow(dead_code)]

use std::borrow::Borrow;

use cinder_autograd::Tensor;
use cinder_device::Device;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

pub fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn uniform(r: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// Standard normal samples (Box-Muller).
pub fn normal(r: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u: f64 = r.random_range(1e-12..1.0);
            let v: f64 = r.random_range(0.0..1.0);
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

pub fn tensor(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&dev(), data, shape).expect("upload")
}

pub fn read(t: impl Borrow<Tensor>) -> Vec<f32> {
    t.borrow().to_vec::<f32>().expect("readback")
}

pub fn read_u32(t: impl Borrow<Tensor>) -> Vec<u32> {
    t.borrow().to_vec::<u32>().expect("readback")
}

#[track_caller]
pub fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= atol + rtol * w.abs(),
            "index {i}: got {g}, want {w} (atol {atol}, rtol {rtol})"
        );
    }
}

/// Column means (f64) of a row-major [n, d] matrix.
pub fn col_means(x: &[f32], n: usize, d: usize) -> Vec<f64> {
    (0..d)
        .map(|j| (0..n).map(|i| x[i * d + j] as f64).sum::<f64>() / n as f64)
        .collect()
}

/// Sample covariance (n - 1), f64, row-major [d, d].
pub fn cpu_cov(x: &[f32], n: usize, d: usize) -> Vec<f64> {
    let m = col_means(x, n, d);
    let mut c = vec![0.0; d * d];
    for i in 0..n {
        for a in 0..d {
            let xa = x[i * d + a] as f64 - m[a];
            for b in 0..d {
                c[a * d + b] += xa * (x[i * d + b] as f64 - m[b]);
            }
        }
    }
    c.iter().map(|v| v / (n - 1) as f64).collect()
}

/// f64 cyclic Jacobi of a symmetric [n, n] matrix: eigenvalues descending, eigenvectors in
/// columns (row-major).
pub fn cpu_eig(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut w = a.to_vec();
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| w[i * n + j] * w[i * n + j])
            .sum();
        let tot: f64 = w.iter().map(|x| x * x).sum();
        if off <= 1e-28 * tot {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = w[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (w[q * n + q] - w[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (kp, kq) = (w[k * n + p], w[k * n + q]);
                    w[k * n + p] = c * kp - s * kq;
                    w[k * n + q] = s * kp + c * kq;
                }
                for k in 0..n {
                    let (pk, qk) = (w[p * n + k], w[q * n + k]);
                    w[p * n + k] = c * pk - s * qk;
                    w[q * n + k] = s * pk + c * qk;
                }
                for k in 0..n {
                    let (kp, kq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * kp - s * kq;
                    v[k * n + q] = s * kp + c * kq;
                }
            }
        }
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&i, &j| w[j * n + j].partial_cmp(&w[i * n + i]).unwrap());
    let vals = idx.iter().map(|&i| w[i * n + i]).collect();
    let mut vecs = vec![0.0; n * n];
    for (c, &i) in idx.iter().enumerate() {
        for k in 0..n {
            vecs[k * n + c] = v[k * n + i];
        }
    }
    (vals, vecs)
}

/// Solves the SPD system a x = b (f64, Gaussian elimination with partial pivoting), b
/// [d, t] row-major.
pub fn cpu_solve(a: &[f64], b: &[f64], d: usize, t: usize) -> Vec<f64> {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    for c in 0..d {
        let p = (c..d)
            .max_by(|&i, &j| a[i * d + c].abs().partial_cmp(&a[j * d + c].abs()).unwrap())
            .unwrap();
        for k in 0..d {
            a.swap(c * d + k, p * d + k);
        }
        for k in 0..t {
            b.swap(c * t + k, p * t + k);
        }
        for r in c + 1..d {
            let f = a[r * d + c] / a[c * d + c];
            for k in c..d {
                a[r * d + k] -= f * a[c * d + k];
            }
            for k in 0..t {
                b[r * t + k] -= f * b[c * t + k];
            }
        }
    }
    let mut x = vec![0.0; d * t];
    for r in (0..d).rev() {
        for k in 0..t {
            let mut s = b[r * t + k];
            for c in r + 1..d {
                s -= a[r * d + c] * x[c * t + k];
            }
            x[r * t + k] = s / a[r * d + r];
        }
    }
    x
}

/// A noisy Swiss roll: `n` points `[n, 3]` (f32, row-major) on a rolled-up sheet, scaled
/// to about unit size.
pub fn swiss_roll(seed: u64, n: usize, noise: f32) -> Vec<f32> {
    let mut r = rng(seed);
    let u = uniform(&mut r, n, 0.0, 1.0);
    let h = uniform(&mut r, n, 0.0, 1.0);
    let e = normal(&mut r, 3 * n);
    let mut x = Vec::with_capacity(3 * n);
    for i in 0..n {
        let t = 1.5 * std::f32::consts::PI * (1.0 + 2.0 * u[i]);
        x.push(t * t.cos() / 10.0 + noise * e[3 * i]);
        x.push(2.0 * h[i] + noise * e[3 * i + 1]);
        x.push(t * t.sin() / 10.0 + noise * e[3 * i + 2]);
    }
    x
}

/// f64 Euclidean distances `[n, n]` between the rows of `x` (`[n, d]`).
pub fn cpu_dists(x: &[f32], n: usize, d: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let s: f64 = (0..d)
                .map(|c| {
                    let t = x[i * d + c] as f64 - x[j * d + c] as f64;
                    t * t
                })
                .sum();
            out[i * n + j] = s.sqrt();
        }
    }
    out
}

/// The `k` nearest other points of every row of the distance matrix `dist` (`[n, n]`), in
/// increasing distance, ties to the lower index.
pub fn cpu_knn(dist: &[f64], n: usize, k: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| {
            let mut c: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            c.sort_by(|&a, &b| {
                dist[i * n + a]
                    .partial_cmp(&dist[i * n + b])
                    .unwrap()
                    .then(a.cmp(&b))
            });
            c.truncate(k);
            c
        })
        .collect()
}

/// Largest `|cos|` between column `c` of `got` (`[n, p]`, f32) and `want` (`[n]`, f64),
/// with both normalized: 1 when they agree up to sign.
pub fn abs_cos(got: &[f32], p: usize, c: usize, want: &[f64]) -> f64 {
    let n = want.len();
    let g: Vec<f64> = (0..n).map(|i| got[i * p + c] as f64).collect();
    let dot: f64 = g.iter().zip(want).map(|(a, b)| a * b).sum();
    let ng: f64 = g.iter().map(|a| a * a).sum::<f64>().sqrt();
    let nw: f64 = want.iter().map(|a| a * a).sum::<f64>().sqrt();
    (dot / (ng * nw)).abs()
}
