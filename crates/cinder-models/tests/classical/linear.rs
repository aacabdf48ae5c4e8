//! Linear / ridge regression, polynomial features and lstsq against f64 CPU solutions.

use super::common::*;
use cinder_device::Error;
use cinder_models::classical::{LinearRegression, lstsq, polynomial_features};

/// CPU ridge with intercept: solves (Xc^T Xc + alpha I) w = Xc^T yc; returns (w [d, t], b [t]).
fn cpu_ridge(
    x: &[f32],
    y: &[f32],
    n: usize,
    d: usize,
    t: usize,
    alpha: f64,
) -> (Vec<f64>, Vec<f64>) {
    let xm = col_means(x, n, d);
    let ym = col_means(y, n, t);
    let mut a = vec![0.0; d * d];
    let mut b = vec![0.0; d * t];
    for i in 0..n {
        for p in 0..d {
            let xp = x[i * d + p] as f64 - xm[p];
            for q in 0..d {
                a[p * d + q] += xp * (x[i * d + q] as f64 - xm[q]);
            }
            for k in 0..t {
                b[p * t + k] += xp * (y[i * t + k] as f64 - ym[k]);
            }
        }
    }
    for p in 0..d {
        a[p * d + p] += alpha;
    }
    let w = cpu_solve(&a, &b, d, t);
    let icpt = (0..t)
        .map(|k| ym[k] - (0..d).map(|p| xm[p] * w[p * t + k]).sum::<f64>())
        .collect();
    (w, icpt)
}

#[test]
fn linear_regression_known_model() {
    let (n, d, t) = (120, 4, 2);
    let mut r = rng(31);
    let x = uniform(&mut r, n * d, -2.0, 2.0);
    let w_true = [1.5f32, -2.0, 0.5, 3.0, -1.0, 0.25, 2.0, 0.0];
    let b_true = [0.7f32, -1.2];
    let noise = normal(&mut r, n * t);
    let mut y = vec![0.0f32; n * t];
    for i in 0..n {
        for k in 0..t {
            y[i * t + k] = b_true[k]
                + (0..d)
                    .map(|p| x[i * d + p] * w_true[p * t + k])
                    .sum::<f32>()
                + 0.01 * noise[i * t + k];
        }
    }
    let (xt, yt) = (tensor(&x, &[n, d]), tensor(&y, &[n, t]));
    let mut lr = LinearRegression::new();
    lr.fit(&xt, &yt).unwrap();
    let (w, b) = cpu_ridge(&x, &y, n, d, t, 0.0);
    assert_close(&read(lr.coef().unwrap()), &w, 1e-4, 1e-4);
    assert_close(&read(lr.intercept().unwrap()), &b, 1e-4, 1e-4);
    // Close to the generating model too.
    let wt: Vec<f64> = w_true.iter().map(|&v| v as f64).collect();
    assert_close(&read(lr.coef().unwrap()), &wt, 1e-2, 0.0);
    assert!(lr.score(&xt, &yt).unwrap() > 0.999);
    let pred = read(lr.predict(&xt.narrow(0, 0, 2).unwrap()).unwrap());
    for i in 0..2 {
        for k in 0..t {
            let want = b[k]
                + (0..d)
                    .map(|p| x[i * d + p] as f64 * w[p * t + k])
                    .sum::<f64>();
            assert!((pred[i * t + k] as f64 - want).abs() < 1e-3);
        }
    }
    // 1-D targets give 1-D predictions.
    let y1: Vec<f32> = (0..n).map(|i| y[i * t]).collect();
    let mut lr1 = LinearRegression::new();
    lr1.fit(&xt, &tensor(&y1, &[n])).unwrap();
    assert_eq!(lr1.predict(&xt).unwrap().shape(), &[n]);
    let (w1, _) = cpu_ridge(&x, &y1, n, d, 1, 0.0);
    assert_close(&read(lr1.coef().unwrap()), &w1, 1e-4, 1e-4);
}

#[test]
fn ridge_matches_cpu_and_handles_collinear() {
    let (n, d) = (40, 5);
    let mut r = rng(32);
    let mut x = uniform(&mut r, n * d, -1.0, 1.0);
    // Column 4 = column 0 + column 1: collinear.
    for i in 0..n {
        x[i * d + 4] = x[i * d] + x[i * d + 1];
    }
    let y = uniform(&mut r, n, -1.0, 1.0);
    let (xt, yt) = (tensor(&x, &[n, d]), tensor(&y, &[n]));
    match LinearRegression::new().fit(&xt, &yt) {
        Err(Error::InvalidArgument { msg, .. }) => assert!(msg.contains("singular"), "{msg}"),
        other => panic!(
            "expected a singular-system error, got {:?}",
            other.map(|_| ())
        ),
    }
    let mut ridge = LinearRegression::ridge(0.5);
    ridge.fit(&xt, &yt).unwrap();
    let (w, b) = cpu_ridge(&x, &y, n, d, 1, 0.5);
    assert_close(&read(ridge.coef().unwrap()), &w, 1e-4, 1e-3);
    assert_close(&read(ridge.intercept().unwrap()), &b, 1e-4, 1e-3);
}

#[test]
fn lstsq_rank_deficient_min_norm() {
    let (n, d) = (30, 4);
    let mut r = rng(33);
    let mut x = uniform(&mut r, n * d, -1.0, 1.0);
    for i in 0..n {
        x[i * d + 3] = x[i * d] - 2.0 * x[i * d + 2];
    }
    let y = uniform(&mut r, n, -1.0, 1.0);
    let sol = lstsq(&tensor(&x, &[n, d]), &tensor(&y, &[n]), 1e-3).unwrap();
    assert_eq!(sol.rank, 3);
    // CPU minimum-norm solution: V diag(1/lambda on the kept part) V^T X^T y in f64.
    let mut g = vec![0.0; d * d];
    let mut xty = vec![0.0; d];
    for i in 0..n {
        for p in 0..d {
            xty[p] += x[i * d + p] as f64 * y[i] as f64;
            for q in 0..d {
                g[p * d + q] += x[i * d + p] as f64 * x[i * d + q] as f64;
            }
        }
    }
    let (w, v) = cpu_eig(&g, d);
    let mut want = vec![0.0; d];
    for c in 0..3 {
        let proj: f64 = (0..d).map(|k| v[k * d + c] * xty[k]).sum::<f64>() / w[c];
        for k in 0..d {
            want[k] += v[k * d + c] * proj;
        }
    }
    assert_close(&read(&sol.solution), &want, 1e-3, 1e-3);
    let sv = read(&sol.singular_values);
    assert_close(
        &sv[..3],
        &w[..3].iter().map(|l| l.sqrt()).collect::<Vec<_>>(),
        1e-4,
        1e-4,
    );
    // Full-rank case: agrees with the normal-equations solution.
    let x2 = uniform(&mut r, n * 3, -1.0, 1.0);
    let sol2 = lstsq(&tensor(&x2, &[n, 3]), &tensor(&y, &[n, 1]), 1e-3).unwrap();
    assert_eq!(sol2.rank, 3);
    let mut lr = LinearRegression::new().with_intercept(false);
    lr.fit(&tensor(&x2, &[n, 3]), &tensor(&y, &[n, 1])).unwrap();
    let want2: Vec<f64> = read(lr.coef().unwrap()).iter().map(|&v| v as f64).collect();
    assert_close(&read(&sol2.solution), &want2, 1e-4, 1e-3);
}

#[test]
fn polynomial_features_and_fit() {
    let x = [0.5f32, -1.0, 2.0, 3.0];
    let xt = tensor(&x, &[2, 2]);
    // scikit-learn's order for degree 3 with bias: 1, a, b, a^2, ab, b^2, a^3, a^2 b, a b^2, b^3.
    let f = read(polynomial_features(&xt, 3, true).unwrap());
    let mut want = Vec::new();
    for i in 0..2 {
        let (a, b) = (x[i * 2] as f64, x[i * 2 + 1] as f64);
        want.extend([
            1.0,
            a,
            b,
            a * a,
            a * b,
            b * b,
            a * a * a,
            a * a * b,
            a * b * b,
            b * b * b,
        ]);
    }
    assert_close(&f, &want, 1e-5, 1e-6);
    let f2 = polynomial_features(&xt, 2, false).unwrap();
    assert_eq!(f2.shape(), &[2, 5]);
    // Fit a known cubic through polynomial features.
    let mut r = rng(34);
    let n = 50;
    let xs = uniform(&mut r, n, -1.0, 1.0);
    let ys: Vec<f32> = xs
        .iter()
        .map(|&v| 1.0 + 2.0 * v - 3.0 * v * v + 0.5 * v * v * v)
        .collect();
    let feats = polynomial_features(&tensor(&xs, &[n, 1]), 3, false).unwrap();
    let mut lr = LinearRegression::new();
    lr.fit(&feats, &tensor(&ys, &[n])).unwrap();
    assert_close(&read(lr.coef().unwrap()), &[2.0, -3.0, 0.5], 2e-3, 0.0);
    assert_close(&read(lr.intercept().unwrap()), &[1.0], 2e-3, 0.0);
    assert!(polynomial_features(&xt, 0, true).is_err());
    // C(2 + 1000, 1000) = 502,503 columns: refused before anything is built.
    assert!(matches!(
        polynomial_features(&xt, 1000, true),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn linear_bad_input() {
    let xt = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 7.0], &[3, 2]);
    assert!(matches!(
        LinearRegression::new().fit(&xt, &tensor(&[1.0, 2.0], &[2])),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        LinearRegression::new().fit(&xt, &tensor(&[1.0, f32::NAN, 2.0], &[3])),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        LinearRegression::ridge(-1.0).fit(&xt, &tensor(&[1.0, 2.0, 3.0], &[3])),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(LinearRegression::new().predict(&xt).is_err());
    assert!(lstsq(&xt, &tensor(&[1.0, 2.0, 3.0], &[3]), 1.5).is_err());
}
