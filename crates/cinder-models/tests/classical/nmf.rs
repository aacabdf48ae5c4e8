//! NMF: the multiplicative updates against an f64 CPU transcription of scikit-learn's
//! `_multiplicative_update_w/_h` and `_beta_divergence`, monotone errors, bad input.

use super::common::*;
use cinder_device::Error;
use cinder_models::classical::{BetaLoss, Nmf, NmfInit};

const EPS: f64 = f32::EPSILON as f64;

/// `a [n, m] @ b [m, p]`, f64 row-major.
fn mm(a: &[f64], b: &[f64], n: usize, m: usize, p: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * p];
    for i in 0..n {
        for t in 0..m {
            let v = a[i * m + t];
            for j in 0..p {
                c[i * p + j] += v * b[t * p + j];
            }
        }
    }
    c
}

fn tr(a: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            t[j * n + i] = a[i * m + j];
        }
    }
    t
}

fn guard(v: f64) -> f64 {
    if v == 0.0 { EPS } else { v }
}

/// One CPU MU step (W then H unless `h_fixed`), in place.
#[allow(clippy::too_many_arguments)]
fn cpu_step(
    kl: bool,
    x: &[f64],
    w: &mut [f64],
    h: &mut [f64],
    n: usize,
    d: usize,
    k: usize,
    h_fixed: bool,
) {
    let ht = tr(h, k, d);
    if !kl {
        let num = mm(x, &ht, n, d, k);
        let den = mm(w, &mm(h, &ht, k, d, k), n, k, k);
        for i in 0..n * k {
            w[i] *= num[i] / guard(den[i]);
        }
    } else {
        let wh = mm(w, h, n, k, d);
        let ratio: Vec<f64> = (0..n * d).map(|i| x[i] / wh[i].max(EPS)).collect();
        let num = mm(&ratio, &ht, n, d, k);
        for i in 0..n {
            for c in 0..k {
                let hs: f64 = (0..d).map(|j| h[c * d + j]).sum();
                w[i * k + c] *= num[i * k + c] / guard(hs);
            }
        }
    }
    if h_fixed {
        return;
    }
    let wt = tr(w, n, k);
    if !kl {
        let num = mm(&wt, x, k, n, d);
        let den = mm(&mm(&wt, w, k, n, k), h, k, k, d);
        for i in 0..k * d {
            h[i] *= num[i] / guard(den[i]);
        }
    } else {
        let wh = mm(w, h, n, k, d);
        let ratio: Vec<f64> = (0..n * d).map(|i| x[i] / wh[i].max(EPS)).collect();
        let num = mm(&wt, &ratio, k, n, d);
        for c in 0..k {
            let mut ws: f64 = (0..n).map(|i| w[i * k + c]).sum();
            if ws == 0.0 {
                ws = 1.0;
            }
            for j in 0..d {
                let v = h[c * d + j] * num[c * d + j] / guard(ws);
                h[c * d + j] = if v < f64::EPSILON { 0.0 } else { v };
            }
        }
    }
}

/// scikit-learn's `_beta_divergence(..., square_root=True)` in f64.
fn cpu_err(kl: bool, x: &[f64], w: &[f64], h: &[f64], n: usize, d: usize, k: usize) -> f64 {
    let wh = mm(w, h, n, k, d);
    if !kl {
        return x
            .iter()
            .zip(&wh)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
    }
    let mut res: f64 = wh.iter().sum();
    for i in 0..n * d {
        if x[i] > EPS {
            res += x[i] * (x[i] / wh[i].max(EPS)).ln() - x[i];
        }
    }
    (2.0 * res.max(0.0)).sqrt()
}

/// Non-negative data of rank about 3 plus noise, some exact zeros; and a positive start.
fn data(n: usize, d: usize, k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut r = rng(11);
    let a = uniform(&mut r, n * 3, 0.0, 1.0);
    let b = uniform(&mut r, 3 * d, 0.0, 1.0);
    let noise = uniform(&mut r, n * d, 0.0, 0.2);
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            let v: f32 =
                (0..3).map(|t| a[i * 3 + t] * b[t * d + j]).sum::<f32>() + noise[i * d + j];
            x[i * d + j] = if (i + 2 * j) % 7 == 0 { 0.0 } else { v };
        }
    }
    let w0 = uniform(&mut r, n * k, 0.1, 1.0);
    let h0 = uniform(&mut r, k * d, 0.1, 1.0);
    (x, w0, h0)
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn nmf_updates_match_cpu_reference() {
    let (n, d, k, iters) = (40, 12, 4, 6);
    let (x, w0, h0) = data(n, d, k);
    let xt = tensor(&x, &[n, d]);
    for (loss, kl) in [
        (BetaLoss::Frobenius, false),
        (BetaLoss::KullbackLeibler, true),
    ] {
        let mut nmf = Nmf::new(k)
            .with_beta_loss(loss)
            .with_init(NmfInit::Custom(tensor(&w0, &[n, k]), tensor(&h0, &[k, d])))
            .with_max_iter(iters)
            .with_tol(0.0);
        let w = read(nmf.fit_transform(&xt).unwrap());
        let h = read(nmf.components().unwrap());
        let (xd, mut wc, mut hc) = (f64s(&x), f64s(&w0), f64s(&h0));
        for _ in 0..iters {
            cpu_step(kl, &xd, &mut wc, &mut hc, n, d, k, false);
        }
        assert_close(&w, &wc, 1e-5, 2e-3);
        assert_close(&h, &hc, 1e-5, 2e-3);
        let err = nmf.reconstruction_err().unwrap() as f64;
        let want = cpu_err(kl, &xd, &wc, &hc, n, d, k);
        assert!(
            (err - want).abs() < 1e-3 * want,
            "{loss:?}: {err} vs {want}"
        );
        assert_eq!(nmf.n_iter().unwrap(), iters);
        // transform: H fixed, W from sqrt(mean(x) / k) everywhere.
        let wt = read(nmf.transform(&xt).unwrap());
        let avg = (xd.iter().sum::<f64>() / (n * d) as f64 / k as f64).sqrt();
        let mut w2 = vec![avg; n * k];
        let mut h2 = f64s(&h);
        for _ in 0..iters {
            cpu_step(kl, &xd, &mut w2, &mut h2, n, d, k, true);
        }
        assert_close(&wt, &w2, 1e-5, 2e-3);
    }
}

#[test]
fn nmf_error_decreases_and_tol_stops() {
    let (n, d, k) = (60, 20, 3);
    let (x, w0, h0) = data(n, d, k);
    let xt = tensor(&x, &[n, d]);
    for loss in [BetaLoss::Frobenius, BetaLoss::KullbackLeibler] {
        let mut prev = f32::INFINITY;
        for iters in [1, 2, 5, 10, 30, 60] {
            let mut nmf = Nmf::new(k)
                .with_beta_loss(loss)
                .with_init(NmfInit::Custom(tensor(&w0, &[n, k]), tensor(&h0, &[k, d])))
                .with_max_iter(iters)
                .with_tol(0.0);
            nmf.fit(&xt).unwrap();
            let e = nmf.reconstruction_err().unwrap();
            assert!(
                e <= prev * (1.0 + 1e-5),
                "{loss:?}: {iters} iterations: {e} > {prev}"
            );
            prev = e;
        }
        // A loose tolerance stops at a multiple of 10, before the cap.
        let mut nmf = Nmf::new(k)
            .with_beta_loss(loss)
            .with_seed(2)
            .with_max_iter(500)
            .with_tol(1e-2);
        nmf.fit(&xt).unwrap();
        let it = nmf.n_iter().unwrap();
        assert!(
            it.is_multiple_of(10) && it < 500,
            "{loss:?}: stopped after {it}"
        );
    }
}

#[test]
fn nmf_random_init_scale() {
    // H = |avg N(0,1)|: mean avg * sqrt(2 / pi); a single iteration keeps W, H >= 0.
    let (n, d, k) = (200, 50, 8);
    let (x, _, _) = data(n, d, k);
    let xt = tensor(&x, &[n, d]);
    let avg = (x.iter().map(|&v| v as f64).sum::<f64>() / (n * d) as f64 / k as f64).sqrt();
    // With max_iter 1 and Frobenius, H after one step is not the init; check the seeded
    // draw through determinism and non-negativity instead, and the scale through W H.
    let mut a = Nmf::new(k).with_seed(9).with_max_iter(1).with_tol(0.0);
    let wa = read(a.fit_transform(&xt).unwrap());
    let mut b = Nmf::new(k).with_seed(9).with_max_iter(1).with_tol(0.0);
    let wb = read(b.fit_transform(&xt).unwrap());
    assert_eq!(wa, wb, "same seed, same factors");
    let mut c = Nmf::new(k).with_seed(10).with_max_iter(1).with_tol(0.0);
    assert_ne!(wa, read(c.fit_transform(&xt).unwrap()));
    assert!(wa.iter().all(|&v| v >= 0.0));
    assert!(read(a.components().unwrap()).iter().all(|&v| v >= 0.0));
    // The initial error of a random init of that scale: WH ~ k avg^2 (2 / pi) = mean(x) 2/pi.
    let mut z = Nmf::new(k).with_seed(9).with_max_iter(1).with_tol(0.0);
    z.fit(&xt).unwrap();
    let h = read(z.components().unwrap());
    let hm = h.iter().map(|&v| v as f64).sum::<f64>() / h.len() as f64;
    assert!(hm > 0.2 * avg && hm < 5.0 * avg, "H mean {hm} vs avg {avg}");
}

#[test]
fn nmf_bad_input() {
    let (n, d, k) = (20, 6, 2);
    let (x, w0, h0) = data(n, d, k);
    let xt = tensor(&x, &[n, d]);
    let inv = |r: Result<&mut Nmf, Error>| matches!(r, Err(Error::InvalidArgument { .. }));
    let mut neg = x.clone();
    neg[5] = -0.1;
    assert!(inv(Nmf::new(k).fit(&tensor(&neg, &[n, d]))));
    let mut nan = x.clone();
    nan[3] = f32::NAN;
    assert!(inv(Nmf::new(k).fit(&tensor(&nan, &[n, d]))));
    assert!(inv(Nmf::new(0).fit(&xt)));
    assert!(inv(Nmf::new(7).fit(&xt)));
    assert!(inv(Nmf::new(k).with_max_iter(0).fit(&xt)));
    assert!(inv(Nmf::new(k).with_tol(f32::NAN).fit(&xt)));
    let custom = |w: &[f32], ws: &[usize], h: &[f32], hs: &[usize]| {
        Nmf::new(k).with_init(NmfInit::Custom(tensor(w, ws), tensor(h, hs)))
    };
    assert!(matches!(
        custom(&w0[..(n - 1) * k], &[n - 1, k], &h0, &[k, d]).fit(&xt),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut wn = w0.clone();
    wn[0] = -1.0;
    assert!(inv(custom(&wn, &[n, k], &h0, &[k, d]).fit(&xt)));
    assert!(inv(
        custom(&w0, &[n, k], &vec![0.0; k * d], &[k, d]).fit(&xt)
    ));
    let unfitted = Nmf::new(k);
    assert!(unfitted.transform(&xt).is_err());
    assert!(unfitted.components().is_err());
    assert!(unfitted.reconstruction_err().is_err());
    assert!(unfitted.n_iter().is_err());
    let mut nmf = Nmf::new(k);
    nmf.fit(&xt).unwrap();
    assert!(matches!(
        nmf.transform(&tensor(&x[..n * 5], &[n, 5])),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(nmf.transform(&tensor(&neg, &[n, d])).is_err());
}
