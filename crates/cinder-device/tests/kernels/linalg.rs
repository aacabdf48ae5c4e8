//! Cholesky, triangular solve and the Jacobi eigen-decomposition against f64 CPU references.

use super::common::*;
use cinder_device::{DType, DeviceTensor, Error};
use rand::rngs::StdRng;

/// `batch` random symmetric positive-definite `n x n` matrices: `m m^T + n I`.
fn spd(rng: &mut StdRng, batch: usize, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(batch * n * n);
    for _ in 0..batch {
        let m = uniform(rng, n * n, -1.0, 1.0);
        for i in 0..n {
            for j in 0..n {
                let mut s: f32 = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum();
                if i == j {
                    s += n as f32;
                }
                out.push(s);
            }
        }
    }
    out
}

/// f64 Cholesky of one row-major matrix; `None` when not positive definite.
fn cpu_cholesky(a: &[f32], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0f64; n * n];
    for j in 0..n {
        let mut s = a[j * n + j] as f64;
        for k in 0..j {
            s -= l[j * n + k] * l[j * n + k];
        }
        if s <= 0.0 {
            return None;
        }
        let d = s.sqrt();
        l[j * n + j] = d;
        for i in j + 1..n {
            let mut t = a[i * n + j] as f64;
            for k in 0..j {
                t -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = t / d;
        }
    }
    Some(l)
}

/// f64 solve of op(T) x = b for one matrix (T's other triangle ignored).
fn cpu_tri_solve(t: &[f32], b: &[f32], n: usize, m: usize, lower: bool, trans: bool) -> Vec<f64> {
    let at = |i: usize, k: usize| -> f64 {
        let (r, c) = if trans { (k, i) } else { (i, k) };
        let inside = if lower { c <= r } else { c >= r };
        if inside { t[r * n + c] as f64 } else { 0.0 }
    };
    let eff_lower = lower != trans;
    let mut x = vec![0.0f64; n * m];
    for c in 0..m {
        let order: Vec<usize> = if eff_lower {
            (0..n).collect()
        } else {
            (0..n).rev().collect()
        };
        for &i in &order {
            let mut s = b[i * m + c] as f64;
            for k in 0..n {
                if k != i {
                    s -= at(i, k) * x[k * m + c];
                }
            }
            x[i * m + c] = s / at(i, i);
        }
    }
    x
}

/// f64 cyclic Jacobi: eigenvalues descending and eigenvectors (columns), row-major.
fn cpu_eig(a: &[f32], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut w: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| w[i * n + j] * w[i * n + j])
            .sum();
        if off < 1e-30 {
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

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

#[test]
fn cholesky_matches_cpu() {
    let mut r = rng(71);
    for &(batch, n) in &[(1, 1), (3, 5), (2, 17), (1, 40)] {
        let a = spd(&mut r, batch, n);
        let (l, info) = tensor(&a, &[batch, n, n]).cholesky().unwrap();
        assert_eq!(info.shape(), &[batch]);
        assert_eq!(read_u32(&info), vec![0; batch], "n {n}");
        let got = read(&l);
        for b in 0..batch {
            let want = cpu_cholesky(&a[b * n * n..(b + 1) * n * n], n).unwrap();
            let g = &got[b * n * n..(b + 1) * n * n];
            // Upper triangle is written as exact zeros.
            assert_close(g, &f32s(&want), 1e-4, 1e-4);
        }
    }
}

#[test]
fn cholesky_reports_non_positive_definite() {
    let mut r = rng(72);
    let n = 6;
    let mut a = spd(&mut r, 3, n);
    // Matrix 1: make the leading minor of order 4 singular-negative by a huge off-diagonal.
    let b = n * n;
    a[b + 3 * n + 2] = 1e4;
    a[b + 2 * n + 3] = 1e4;
    // Matrix 2: negative first pivot.
    a[2 * b] = -1.0;
    let t = tensor(&a, &[3, n, n]);
    let (l, info) = t.cholesky().unwrap();
    assert_eq!(read_u32(&info), vec![0, 4, 1]);
    // The failed factor has zero columns from the failing one on.
    let lv = read(&l);
    for i in 0..n {
        for j in 3..n {
            assert_eq!(lv[b + i * n + j], 0.0);
        }
    }
    match t.cholesky_checked() {
        Err(Error::InvalidArgument { msg, .. }) => {
            assert!(msg.contains("matrix 1") && msg.contains("order 4"), "{msg}")
        }
        other => panic!(
            "expected an error, got {:?}",
            other.map(|t| t.shape().to_vec())
        ),
    }
    // A good batch passes the checked version.
    let good = tensor(&a[..b], &[n, n]);
    let l = good.cholesky_checked().unwrap();
    assert_close(
        &read(&l),
        &f32s(&cpu_cholesky(&a[..b], n).unwrap()),
        1e-4,
        1e-4,
    );
}

#[test]
fn tri_solve_all_variants() {
    let mut r = rng(73);
    let (batch, n, m) = (2, 9, 3);
    // Well-conditioned triangles: random entries, diagonal pushed away from zero; the other
    // triangle is garbage that must never be read.
    let mut t = uniform(&mut r, batch * n * n, -1.0, 1.0);
    for b in 0..batch {
        for i in 0..n {
            t[b * n * n + i * n + i] += if i % 2 == 0 { 3.0 } else { -3.0 };
        }
    }
    let rhs = uniform(&mut r, batch * n * m, -2.0, 2.0);
    let tt = tensor(&t, &[batch, n, n]);
    let rt = tensor(&rhs, &[batch, n, m]);
    for lower in [true, false] {
        for trans in [false, true] {
            let got = read(&tt.tri_solve(&rt, lower, trans).unwrap());
            for b in 0..batch {
                let want = cpu_tri_solve(
                    &t[b * n * n..(b + 1) * n * n],
                    &rhs[b * n * m..(b + 1) * n * m],
                    n,
                    m,
                    lower,
                    trans,
                );
                assert_close(&got[b * n * m..(b + 1) * n * m], &f32s(&want), 1e-4, 1e-4);
            }
        }
    }
    // One matrix broadcast over the batch of right-hand sides.
    let t0 = tensor(&t[..n * n], &[n, n]);
    let got = read(&t0.tri_solve(&rt, true, false).unwrap());
    for b in 0..batch {
        let want = cpu_tri_solve(
            &t[..n * n],
            &rhs[b * n * m..(b + 1) * n * m],
            n,
            m,
            true,
            false,
        );
        assert_close(&got[b * n * m..(b + 1) * n * m], &f32s(&want), 1e-4, 1e-4);
    }
    // Misuse.
    assert!(matches!(
        tt.tri_solve(&tensor(&rhs[..8 * m], &[8, m]), true, false),
        Err(Error::ShapeMismatch { .. })
    ));
    let t3 = tensor(&uniform(&mut r, 3 * n * n, 0.0, 1.0), &[3, n, n]);
    assert!(matches!(
        t3.tri_solve(&rt, true, false),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        tensor(&t[..n * 2], &[n, 2]).tri_solve(&rt, true, false),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn cholesky_solve_and_inverse() {
    let mut r = rng(74);
    let (batch, n, m) = (3, 12, 2);
    let a = spd(&mut r, batch, n);
    let rhs = uniform(&mut r, batch * n * m, -1.0, 1.0);
    let at = tensor(&a, &[batch, n, n]);
    let l = at.cholesky_checked().unwrap();
    let x = l.cholesky_solve(&tensor(&rhs, &[batch, n, m])).unwrap();
    let xv = read(&x);
    // Residual a x - rhs in f64.
    for b in 0..batch {
        for i in 0..n {
            for c in 0..m {
                let s: f64 = (0..n)
                    .map(|k| a[b * n * n + i * n + k] as f64 * xv[b * n * m + k * m + c] as f64)
                    .sum();
                let want = rhs[b * n * m + i * m + c] as f64;
                assert!((s - want).abs() < 1e-4, "residual {s} vs {want}");
            }
        }
    }
    // l^{-1} l = I.
    let linv = l.tri_inverse(true).unwrap();
    let prod = read(&linv.matmul(&l).unwrap());
    for b in 0..batch {
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 1.0 } else { 0.0 };
                let g = prod[b * n * n + i * n + j];
                assert!((g - want).abs() < 1e-4, "[{b}, {i}, {j}] = {g}");
            }
        }
    }
    let d = read(&l.diagonal().unwrap());
    let lv = read(&l);
    for b in 0..batch {
        for i in 0..n {
            assert_eq!(d[b * n + i], lv[b * n * n + i * n + i]);
        }
    }
}

#[test]
fn sym_eig_matches_cpu() {
    let mut r = rng(75);
    for &(batch, n) in &[(1, 1), (2, 6), (2, 24), (1, 50)] {
        let m = uniform(&mut r, batch * n * n, -1.0, 1.0);
        let mut a = vec![0.0f32; batch * n * n];
        for b in 0..batch {
            for i in 0..n {
                for j in 0..n {
                    a[b * n * n + i * n + j] = m[b * n * n + i * n + j] + m[b * n * n + j * n + i];
                }
            }
        }
        let (w, v) = tensor(&a, &[batch, n, n]).sym_eig().unwrap();
        assert_eq!(w.shape(), &[batch, n]);
        let (wv, vv) = (read(&w), read(&v));
        for b in 0..batch {
            let ab = &a[b * n * n..(b + 1) * n * n];
            let (cw, cv) = cpu_eig(ab, n);
            let scale = cw.iter().fold(0.0f64, |s, x| s.max(x.abs())) as f32;
            assert_close(
                &wv[b * n..(b + 1) * n],
                &f32s(&cw),
                2e-5 * scale.max(1.0),
                0.0,
            );
            let g = &vv[b * n * n..(b + 1) * n * n];
            for c in 0..n {
                // Columns equal up to sign (random matrices: distinct eigenvalues).
                let dot: f64 = (0..n).map(|k| g[k * n + c] as f64 * cv[k * n + c]).sum();
                assert!(
                    (dot.abs() - 1.0).abs() < 1e-3,
                    "n {n} column {c}: |dot| {dot}"
                );
                // a v_c = w_c v_c.
                for i in 0..n {
                    let av: f64 = (0..n)
                        .map(|k| ab[i * n + k] as f64 * g[k * n + c] as f64)
                        .sum();
                    let wv_ = wv[b * n + c] as f64 * g[i * n + c] as f64;
                    assert!((av - wv_).abs() < 1e-4 * scale as f64 + 1e-5, "n {n}");
                }
            }
        }
    }
}

#[test]
fn sym_eig_known_spectrum() {
    // Q diag(5, 3, 1, -2) Q^T with a known rotation Q: exact eigenvalues, sorted descending.
    let (c, s) = (0.6f64, 0.8f64);
    let q = [
        [c, -s, 0.0, 0.0],
        [s, c, 0.0, 0.0],
        [0.0, 0.0, c, s],
        [0.0, 0.0, -s, c],
    ];
    let d = [1.0, -2.0, 5.0, 3.0];
    let mut a = vec![0.0f32; 16];
    for i in 0..4 {
        for j in 0..4 {
            a[i * 4 + j] = (0..4).map(|k| q[i][k] * d[k] * q[j][k]).sum::<f64>() as f32;
        }
    }
    let (w, v) = tensor(&a, &[4, 4]).sym_eig().unwrap();
    assert_close(&read(&w), &[5.0, 3.0, 1.0, -2.0], 1e-5, 0.0);
    let vv = read(&v);
    // Eigenvector of 5 is column 2 of q: (0, 0, c, -s) up to sign.
    let col0: Vec<f32> = (0..4).map(|k| vv[k * 4]).collect();
    let sign = col0[2].signum();
    assert_close(
        &col0.iter().map(|x| x * sign).collect::<Vec<_>>(),
        &[0.0, 0.0, 0.6, -0.8],
        1e-5,
        0.0,
    );
}

#[test]
fn linalg_misuse() {
    let d = dev();
    let rect = tensor(&[1.0; 6], &[2, 3]);
    assert!(matches!(
        rect.cholesky(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(rect.sym_eig(), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        tensor(&[1.0; 3], &[3]).cholesky(),
        Err(Error::InvalidArgument { .. })
    ));
    let u = DeviceTensor::from_slice(&d, &[1u32; 4], &[2, 2]).unwrap();
    assert!(matches!(u.cholesky(), Err(Error::DtypeMismatch { .. })));
    assert!(matches!(u.sym_eig(), Err(Error::DtypeMismatch { .. })));
    assert_eq!(u.dtype(), DType::U32);
}

#[test]
fn orthonormalize_spans_and_drops_dependent_columns() {
    let mut r = rng(76);
    let (batch, n, m) = (2, 30, 7);
    // Columns with very different scales (condition ~1e3).
    let mut z = uniform(&mut r, batch * n * m, -1.0, 1.0);
    for b in 0..batch {
        for i in 0..n {
            for k in 0..m {
                z[b * n * m + i * m + k] *= 10f32.powi(-(k as i32) / 2);
            }
        }
    }
    // Batch 1: column 4 = 2 * column 1 - column 0 (dependent).
    for i in 0..n {
        let o = n * m + i * m;
        z[o + 4] = 2.0 * z[o + 1] - z[o];
    }
    let q = read(&tensor(&z, &[batch, n, m]).orthonormalize().unwrap());
    let col = |b: usize, k: usize, v: &[f32]| -> Vec<f64> {
        (0..n).map(|i| v[b * n * m + i * m + k] as f64).collect()
    };
    let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
    for b in 0..batch {
        for k in 0..m {
            let qk = col(b, k, &q);
            let dead = b == 1 && k == 4;
            assert!(
                (dot(&qk, &qk) - if dead { 0.0 } else { 1.0 }).abs() < 1e-5,
                "batch {b} column {k} norm {}",
                dot(&qk, &qk)
            );
            for j in 0..k {
                let qj = col(b, j, &q);
                assert!(dot(&qj, &qk).abs() < 1e-5, "batch {b} columns {j} {k}");
            }
            // Triangular structure: column k of the input lies in span(q_0..q_k).
            let zk = col(b, k, &z);
            let mut resid = zk.clone();
            for j in 0..=k {
                let qj = col(b, j, &q);
                let c = dot(&qj, &zk);
                for i in 0..n {
                    resid[i] -= c * qj[i];
                }
            }
            let rel = (dot(&resid, &resid) / dot(&zk, &zk)).sqrt();
            assert!(rel < 1e-4, "batch {b} column {k}: residual {rel}");
        }
    }
    assert!(matches!(
        tensor(&[1.0; 3], &[3]).orthonormalize(),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn nonfinite_mask_marks_nan_and_inf() {
    let mut r = rng(77);
    // Not a multiple of the workgroup or of the elements per invocation; several kinds of
    // special values at scattered positions.
    let n = 64 * 8 * 3 + 13;
    let mut v = uniform(&mut r, n, -1e30, 1e30);
    let specials = [
        (0, f32::NAN),
        (7, f32::INFINITY),
        (513, f32::NEG_INFINITY),
        (n - 1, -f32::NAN),
        (100, f32::MAX),
        (101, f32::MIN_POSITIVE / 4.0), // subnormal: finite
        (102, -0.0),
    ];
    for &(i, x) in &specials {
        v[i] = x;
    }
    let got = read(&tensor(&v, &[n]).nonfinite_mask().unwrap());
    let want: Vec<f32> = v
        .iter()
        .map(|x| if x.is_finite() { 0.0 } else { 1.0 })
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.iter().sum::<f32>(), 4.0);
    let u = DeviceTensor::from_slice(&dev(), &[1u32], &[1]).unwrap();
    assert!(matches!(
        u.nonfinite_mask(),
        Err(Error::DtypeMismatch { .. })
    ));
}
