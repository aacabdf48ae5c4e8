//! Softmax, log-softmax and their backward helpers against f64 CPU references.

use super::common::*;
use cinder_device::{DeviceTensor, Error};

/// Applies `f` (row in, row out) to every row along `axis`, writing back in place order.
fn cpu_map_rows(
    xs: &[&[f32]],
    shape: &[usize],
    axis: usize,
    f: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) -> Vec<f32> {
    let outer: usize = shape[..axis].iter().product();
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0f32; outer * len * inner];
    for o in 0..outer {
        for i in 0..inner {
            let idx = |k: usize| o * len * inner + k * inner + i;
            let rows: Vec<Vec<f64>> = xs
                .iter()
                .map(|x| (0..len).map(|k| x[idx(k)] as f64).collect())
                .collect();
            for (k, v) in f(&rows).into_iter().enumerate() {
                out[idx(k)] = v as f32;
            }
        }
    }
    out
}

fn softmax(r: &[Vec<f64>]) -> Vec<f64> {
    let m = r[0].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = r[0].iter().map(|v| (v - m).exp()).sum();
    r[0].iter().map(|v| (v - m).exp() / s).collect()
}

fn log_softmax(r: &[Vec<f64>]) -> Vec<f64> {
    let m = r[0].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let ls = m + r[0].iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    r[0].iter().map(|v| v - ls).collect()
}

/// y * (g - sum(g * y)); rows = [g, y].
fn softmax_bwd(r: &[Vec<f64>]) -> Vec<f64> {
    let (g, y) = (&r[0], &r[1]);
    let dot: f64 = g.iter().zip(y).map(|(a, b)| a * b).sum();
    g.iter().zip(y).map(|(a, b)| b * (a - dot)).collect()
}

/// g - exp(y) * sum(g); rows = [g, y].
fn log_softmax_bwd(r: &[Vec<f64>]) -> Vec<f64> {
    let (g, y) = (&r[0], &r[1]);
    let s: f64 = g.iter().sum();
    g.iter().zip(y).map(|(a, b)| a - b.exp() * s).collect()
}

fn check_shape(shape: &[usize], seed: u64, scale: f32) {
    let mut r = rng(seed);
    let n: usize = shape.iter().product();
    let x = uniform(&mut r, n, -scale, scale);
    let g = uniform(&mut r, n, -1.0, 1.0);
    let (tx, tg) = (tensor(&x, shape), tensor(&g, shape));
    let rank = shape.len() as isize;
    for a in 0..shape.len() {
        for axis in [a as isize, a as isize - rank] {
            let y = tx.softmax(axis).unwrap();
            assert_eq!(y.shape(), shape);
            let yv = read(&y);
            assert_close(&yv, &cpu_map_rows(&[&x], shape, a, softmax), 1e-6, 1e-5);
            let ly = tx.log_softmax(axis).unwrap();
            let lyv = read(&ly);
            assert_close(
                &lyv,
                &cpu_map_rows(&[&x], shape, a, log_softmax),
                1e-5,
                1e-5,
            );
            let dx = read(&tg.softmax_backward(&y, axis).unwrap());
            assert_close(
                &dx,
                &cpu_map_rows(&[&g, &yv], shape, a, softmax_bwd),
                1e-5,
                1e-4,
            );
            let dx = read(&tg.log_softmax_backward(&ly, axis).unwrap());
            let want = cpu_map_rows(&[&g, &lyv], shape, a, log_softmax_bwd);
            assert_close(&dx, &want, 1e-5 * shape[a] as f32, 1e-4);
        }
    }
}

#[test]
fn softmax_along_each_axis_rank3() {
    check_shape(&[5, 7, 3], 1, 3.0);
    check_shape(&[1, 9, 1], 2, 3.0);
}

#[test]
fn softmax_long_rows_use_a_workgroup_per_row() {
    // len 1001 with 3 rows (inner stride 1) and len 700 with 2 rows along axis 0 (stride 2).
    check_shape(&[3, 1001], 3, 10.0);
    check_shape(&[700, 2], 4, 10.0);
}

#[test]
fn softmax_is_stable() {
    let t = tensor(&[1000.0, 0.0, -1000.0, -1000.0, 0.0, 88.0], &[3, 2]);
    let y = read(&t.softmax(1).unwrap());
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    assert_close(&y[..4], &[1.0, 0.0, 0.5, 0.5], 1e-7, 1e-6);
    let ly = read(&t.log_softmax(-1).unwrap());
    assert!(ly.iter().all(|v| v.is_finite()), "{ly:?}");
    let ln2 = std::f32::consts::LN_2;
    assert_close(&ly[..4], &[0.0, -1000.0, -ln2, -ln2], 1e-6, 1e-6);
    // Long-row path too.
    let mut x = vec![0.0f32; 1000];
    x[17] = 1000.0;
    let t = tensor(&x, &[1, 1000]);
    let y = read(&t.softmax(1).unwrap());
    assert_eq!(y[17], 1.0);
    assert!(y.iter().enumerate().all(|(i, &v)| i == 17 || v == 0.0));
    let ly = read(&t.log_softmax(1).unwrap());
    assert!(
        ly[17].abs() < 1e-6 && (ly[0] + 1000.0).abs() < 1e-3,
        "{} {}",
        ly[17],
        ly[0]
    );
}

#[test]
fn softmax_misuse_is_an_error() {
    let t = tensor(&[1.0; 6], &[2, 3]);
    let y = tensor(&[1.0; 6], &[3, 2]);
    for (name, res) in [
        ("softmax", t.softmax(2)),
        ("log_softmax", t.log_softmax(-3)),
        ("softmax_backward", t.softmax_backward(&t, 2)),
        ("log_softmax_backward", t.log_softmax_backward(&t, -3)),
    ] {
        match res {
            Err(Error::AxisOutOfRange { op, .. }) => assert_eq!(op, name),
            other => panic!("{name}: expected AxisOutOfRange, got {other:?}"),
        }
    }
    for (name, res) in [
        ("softmax_backward", t.softmax_backward(&y, 1)),
        ("log_softmax_backward", t.log_softmax_backward(&y, 1)),
    ] {
        match res {
            Err(Error::ShapeMismatch { op, .. }) => assert_eq!(op, name),
            other => panic!("{name}: expected ShapeMismatch, got {other:?}"),
        }
    }
    let u = DeviceTensor::from_slice(&dev(), &[1u32, 2, 3], &[3]).unwrap();
    for (name, res) in [
        ("softmax", u.softmax(0)),
        ("log_softmax", u.log_softmax(0)),
        (
            "softmax_backward",
            t.reshape(&[6]).unwrap().softmax_backward(&u, 0),
        ),
        ("log_softmax_backward", u.log_softmax_backward(&u, 0)),
    ] {
        match res {
            Err(Error::DtypeMismatch { op, .. }) => assert_eq!(op, name),
            other => panic!("{name}: expected DtypeMismatch, got {other:?}"),
        }
    }
    let s = DeviceTensor::scalar(&dev(), 1.0).unwrap();
    assert!(matches!(
        s.softmax(0),
        Err(Error::AxisOutOfRange { op: "softmax", .. })
    ));
}
