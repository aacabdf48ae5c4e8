//! Reduction kernels against CPU references that accumulate in f64.

use super::common::*;
use cinder_device::{DeviceTensor, Error};

/// (outer, len, inner) around `axis`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Applies `f` to every row along `axis` (rows in output order).
fn cpu_rows<T>(x: &[f32], shape: &[usize], axis: usize, f: impl Fn(&[f64]) -> T) -> Vec<T> {
    let (outer, len, inner) = split(shape, axis);
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let row: Vec<f64> = (0..len)
                .map(|k| x[o * len * inner + k * inner + i] as f64)
                .collect();
            out.push(f(&row));
        }
    }
    out
}

fn sum(r: &[f64]) -> f64 {
    r.iter().sum()
}
fn mean(r: &[f64]) -> f64 {
    sum(r) / r.len() as f64
}
/// PyTorch's max: NaN when the row holds one (`f64::max` would drop it).
fn max(r: &[f64]) -> f64 {
    if r.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    r.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
}
fn min(r: &[f64]) -> f64 {
    if r.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    r.iter().cloned().fold(f64::INFINITY, f64::min)
}
/// PyTorch's argmax: the first NaN, else the first maximum.
fn argmax(r: &[f64]) -> u32 {
    let m = max(r);
    r.iter()
        .position(|&v| v == m || (m.is_nan() && v.is_nan()))
        .unwrap() as u32
}
fn argmin(r: &[f64]) -> u32 {
    let m = min(r);
    r.iter()
        .position(|&v| v == m || (m.is_nan() && v.is_nan()))
        .unwrap() as u32
}
fn lse(r: &[f64]) -> f64 {
    let m = max(r);
    m + r.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}
fn var(r: &[f64], corr: f64) -> f64 {
    let m = mean(r);
    r.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (r.len() as f64 - corr)
}

fn f32s(v: Vec<f64>) -> Vec<f32> {
    v.into_iter().map(|x| x as f32).collect()
}

fn kept_shape(shape: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keepdim {
        s[axis] = 1;
    } else {
        s.remove(axis);
    }
    s
}

/// Every per-axis reduction of a tensor of `shape`, along every axis (positive and negative),
/// keepdim both ways.
fn check_all_axis_reductions(shape: &[usize], seed: u64) {
    let mut r = rng(seed);
    let (t, x) = rand_tensor(&mut r, shape);
    let rank = shape.len() as isize;
    for a in 0..shape.len() {
        for (axis, keepdim) in [(a as isize, false), (a as isize - rank, true)] {
            let want_shape = kept_shape(shape, a, keepdim);
            let f = |g: fn(&[f64]) -> f64| f32s(cpu_rows(&x, shape, a, g));
            let cases: Vec<(&str, DeviceTensor, Vec<f32>, f32)> = vec![
                ("sum", t.sum_axis(axis, keepdim).unwrap(), f(sum), 1e-5),
                ("mean", t.mean_axis(axis, keepdim).unwrap(), f(mean), 1e-6),
                ("max", t.amax_axis(axis, keepdim).unwrap(), f(max), 0.0),
                ("min", t.amin_axis(axis, keepdim).unwrap(), f(min), 0.0),
                (
                    "lse",
                    t.logsumexp_axis(axis, keepdim).unwrap(),
                    f(lse),
                    1e-5,
                ),
                (
                    "var1",
                    t.var_axis(axis, true, keepdim).unwrap(),
                    f(|r| var(r, 1.0)),
                    1e-5,
                ),
                (
                    "var0",
                    t.var_axis(axis, false, keepdim).unwrap(),
                    f(|r| var(r, 0.0)),
                    1e-5,
                ),
            ];
            for (what, got, want, tol) in cases {
                assert_eq!(got.shape(), &want_shape[..], "{what} {shape:?} axis {axis}");
                let len = shape[a] as f32;
                let got = read(&got);
                // var of one element with correction 1 is NaN, which assert_close checks.
                assert_close(&got, &want, tol * len.max(1.0), tol);
            }
            let am = t.argmax_axis(axis, keepdim).unwrap();
            assert_eq!(am.shape(), &want_shape[..]);
            assert_eq!(
                read_u32(&am),
                cpu_rows(&x, shape, a, argmax),
                "argmax {shape:?} {axis}"
            );
            let am = t.argmin_axis(axis, keepdim).unwrap();
            assert_eq!(
                read_u32(&am),
                cpu_rows(&x, shape, a, argmin),
                "argmin {shape:?} {axis}"
            );
        }
    }
}

#[test]
fn axis_reductions_rank3_odd_sizes() {
    check_all_axis_reductions(&[5, 7, 3], 10);
}

#[test]
fn axis_reductions_with_size_one_axes() {
    check_all_axis_reductions(&[1, 9, 1], 11);
    check_all_axis_reductions(&[3, 1, 4], 12);
}

#[test]
fn axis_reductions_long_axis_use_the_tree() {
    // Few outputs, long axis: one workgroup per output (single pass) ...
    check_all_axis_reductions(&[2, 1001, 3], 13);
    // ... and chunked passes over a 100,000-long axis with 3 outputs.
    let mut r = rng(14);
    let shape = [100_000, 3];
    let x = uniform(&mut r, 300_000, 0.0, 1.0);
    let t = tensor(&x, &shape);
    let want = f32s(cpu_rows(&x, &shape, 0, sum));
    assert_close(&read(&t.sum_axis(0, false).unwrap()), &want, 0.0, 1e-5);
    let want = f32s(cpu_rows(&x, &shape, 0, |r| var(r, 1.0)));
    assert_close(
        &read(&t.var_axis(-2, true, true).unwrap()),
        &want,
        0.0,
        1e-4,
    );
    let want = cpu_rows(&x, &shape, 0, argmax);
    assert_eq!(read_u32(&t.argmax_axis(0, false).unwrap()), want);
    let want = f32s(cpu_rows(&x, &shape, 0, lse));
    assert_close(
        &read(&t.logsumexp_axis(0, false).unwrap()),
        &want,
        0.0,
        1e-5,
    );
}

#[test]
fn whole_tensor_reductions_on_a_million_elements() {
    let n = 1_000_003;
    let mut r = rng(20);
    let x = uniform(&mut r, n, -1.0, 3.0);
    let t = tensor(&x, &[n]);
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let abs_sum: f64 = xd.iter().map(|v| v.abs()).sum();
    let s = t.sum_all().unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    let got = s.to_scalar().unwrap() as f64;
    assert!(
        (got - sum(&xd)).abs() <= 1e-6 * abs_sum,
        "sum {got} vs {}",
        sum(&xd)
    );
    let got = t.mean_all().unwrap().to_scalar().unwrap() as f64;
    assert!(
        (got - mean(&xd)).abs() <= 1e-6 * abs_sum / n as f64,
        "mean {got}"
    );
    assert_eq!(t.max_all().unwrap().to_scalar().unwrap() as f64, max(&xd));
    assert_eq!(t.min_all().unwrap().to_scalar().unwrap() as f64, min(&xd));
    let am = t.argmax_all().unwrap();
    assert_eq!(am.shape(), &[] as &[usize]);
    assert_eq!(read_u32(&am), vec![argmax(&xd)]);
    assert_eq!(read_u32(&t.argmin_all().unwrap()), vec![argmin(&xd)]);
    let got = t.logsumexp_all().unwrap().to_scalar().unwrap() as f64;
    assert!((got - lse(&xd)).abs() <= 1e-5 * lse(&xd).abs(), "lse {got}");
    for (unbiased, corr) in [(true, 1.0), (false, 0.0)] {
        let got = t.var_all(unbiased).unwrap().to_scalar().unwrap() as f64;
        let want = var(&xd, corr);
        assert!((got - want).abs() <= 1e-5 * want, "var {got} vs {want}");
    }
    // A rank-3 view flattens row-major: argmax_all gives the flat index.
    let t3 = t.reshape(&[1, 1, n]).unwrap();
    assert_eq!(read_u32(&t3.argmax_all().unwrap()), vec![argmax(&xd)]);
}

#[test]
fn argmax_ties_give_the_first_index() {
    let t = tensor(
        &[
            1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0, 5.0, -1.0, -2.0, -2.0, -1.0,
        ],
        &[3, 4],
    );
    assert_eq!(read_u32(&t.argmax_axis(1, false).unwrap()), vec![1, 0, 0]);
    assert_eq!(read_u32(&t.argmin_axis(-1, false).unwrap()), vec![0, 0, 1]);
    assert_eq!(
        read_u32(&t.argmax_axis(0, false).unwrap()),
        vec![1, 1, 1, 1]
    );
    assert_eq!(read_u32(&t.argmax_all().unwrap()), vec![4]);
    assert_eq!(read_u32(&t.argmin_all().unwrap()), vec![9]);
    // Through the multi-pass tree: ties far apart, and a constant tensor.
    let n = 600_001;
    let mut x = vec![0.0f32; n];
    x[345_678] = 2.0;
    x[500_000] = 2.0;
    x[599_999] = 2.0;
    x[400_000] = -1.0;
    x[10] = -1.0;
    let t = tensor(&x, &[n]);
    assert_eq!(read_u32(&t.argmax_all().unwrap()), vec![345_678]);
    assert_eq!(read_u32(&t.argmin_all().unwrap()), vec![10]);
    let c = DeviceTensor::full(&dev(), &[3000, 3], 7.0).unwrap();
    assert_eq!(read_u32(&c.argmax_axis(0, false).unwrap()), vec![0, 0, 0]);
    assert_eq!(read_u32(&c.argmin_all().unwrap()), vec![0]);
    // Every value -inf-like large negative still yields a valid index.
    let neg = tensor(&[f32::MIN, f32::MIN, f32::MIN], &[3]);
    assert_eq!(read_u32(&neg.argmax_all().unwrap()), vec![0]);
}

#[test]
fn logsumexp_of_large_values_is_finite() {
    let t = tensor(&[1000.0, 1000.0, -1000.0, -1000.0], &[2, 2]);
    let got = read(&t.logsumexp_axis(1, false).unwrap());
    let ln2 = std::f32::consts::LN_2;
    assert_close(&got, &[1000.0 + ln2, -1000.0 + ln2], 0.0, 1e-6);
    let got = read(&t.logsumexp_axis(0, true).unwrap());
    assert_close(&got, &[1000.0, 1000.0], 0.0, 1e-6);
    let mut r = rng(30);
    let x = uniform(&mut r, 300_001, 500.0, 1000.0);
    let got = tensor(&x, &[300_001])
        .logsumexp_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    assert!(got.is_finite());
    assert!(
        (got as f64 - lse(&xd)).abs() < 1e-3,
        "{got} vs {}",
        lse(&xd)
    );
}

#[test]
fn variance_is_numerically_sound() {
    // Large offset, small spread: the naive E[x^2] - E[x]^2 would lose every digit.
    let mut r = rng(40);
    let n = 50_001;
    let x: Vec<f32> = uniform(&mut r, n, -1.0, 1.0)
        .into_iter()
        .map(|v| 10_000.0 + v)
        .collect();
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let t = tensor(&x, &[n]);
    for (unbiased, corr) in [(true, 1.0), (false, 0.0)] {
        let got = t.var_all(unbiased).unwrap().to_scalar().unwrap() as f64;
        let want = var(&xd, corr);
        assert!((got - want).abs() < 1e-3 * want, "var {got} vs {want}");
    }
    let small = tensor(&[1.0, 2.0, 3.0, 4.0], &[4]);
    assert_close(
        &read(&small.var_all(true).unwrap()),
        &[5.0 / 3.0],
        0.0,
        1e-6,
    );
    assert_close(&read(&small.var_all(false).unwrap()), &[1.25], 0.0, 1e-6);
    // One element: unbiased is NaN, biased is 0 (as PyTorch).
    let one = tensor(&[3.0], &[1]);
    assert!(read(&one.var_all(true).unwrap())[0].is_nan());
    assert_eq!(read(&one.var_all(false).unwrap()), vec![0.0]);
}

#[test]
fn empty_axes() {
    let t = DeviceTensor::from_slice::<f32>(&dev(), &[], &[2, 0, 3]).unwrap();
    let s = t.sum_axis(1, false).unwrap();
    assert_eq!(s.shape(), &[2, 3]);
    assert_eq!(read(&s), vec![0.0; 6]);
    assert!(
        read(&t.mean_axis(1, true).unwrap())
            .iter()
            .all(|v| v.is_nan())
    );
    assert!(
        read(&t.var_axis(1, false, true).unwrap())
            .iter()
            .all(|v| v.is_nan())
    );
    assert_eq!(read(&t.sum_all().unwrap()), vec![0.0]);
    assert!(read(&t.mean_all().unwrap())[0].is_nan());
    // logsumexp of nothing is -inf, as PyTorch
    assert_eq!(
        read(&t.logsumexp_axis(1, false).unwrap()),
        vec![f32::NEG_INFINITY; 6]
    );
    // Reducing a non-empty axis of an empty tensor gives an empty tensor.
    assert_eq!(t.amax_axis(2, false).unwrap().shape(), &[2, 0]);
    for (op, res) in [
        ("amax_axis", t.amax_axis(1, false)),
        ("amin_axis", t.amin_axis(1, false)),
        ("argmax_axis", t.argmax_axis(1, false)),
        ("argmin_axis", t.argmin_axis(1, false)),
        ("max_all", t.max_all()),
        ("argmax_all", t.argmax_all()),
    ] {
        match res {
            Err(Error::InvalidArgument { op: o, .. }) => assert_eq!(o, op),
            other => panic!("{op}: expected InvalidArgument, got {other:?}"),
        }
    }
}

/// CPU sum of `x` (shape `src`) down to `dst` (which broadcasts to `src`).
fn cpu_sum_to(x: &[f32], src: &[usize], dst: &[usize]) -> Vec<f32> {
    let n: usize = dst.iter().product();
    let mut out = vec![0.0f64; n];
    let off = src.len() - dst.len();
    for (lin, &v) in x.iter().enumerate() {
        let mut rem = lin;
        let mut coord = vec![0; src.len()];
        for d in (0..src.len()).rev() {
            coord[d] = rem % src[d];
            rem /= src[d];
        }
        let mut o = 0;
        for d in 0..dst.len() {
            let c = if dst[d] == 1 { 0 } else { coord[d + off] };
            o = o * dst[d] + c;
        }
        out[o] += v as f64;
    }
    f32s(out)
}

#[test]
fn sum_to_shape_undoes_broadcasting() {
    let mut r = rng(50);
    let src = [4, 3, 5];
    let (t, x) = rand_tensor(&mut r, &src);
    let targets: &[&[usize]] = &[
        &[3, 1],
        &[1, 5],
        &[],
        &[5],
        &[1],
        &[4, 1, 5],
        &[4, 1, 1],
        &[1, 3, 1],
        &[1, 1, 1],
        &[4, 3, 5],
    ];
    for &dst in targets {
        let got = t.sum_to_shape(dst).unwrap();
        assert_eq!(got.shape(), dst);
        assert_close(&read(&got), &cpu_sum_to(&x, &src, dst), 1e-5, 1e-5);
    }
    let src = [2, 1, 3, 7];
    let (t, x) = rand_tensor(&mut r, &src);
    for &dst in &[&[1usize, 1, 3, 1][..], &[7], &[3, 7], &[2, 1, 1, 7]] {
        let got = t.sum_to_shape(dst).unwrap();
        assert_eq!(got.shape(), dst);
        assert_close(&read(&got), &cpu_sum_to(&x, &src, dst), 1e-5, 1e-5);
    }
    for bad in [&[2, 5][..], &[4, 3, 5, 1], &[1, 4, 3, 5], &[4, 2, 5], &[6]] {
        match t.sum_to_shape(bad).err() {
            Some(Error::ShapeMismatch { op, .. }) => assert_eq!(op, "sum_to_shape"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn sum_axes_several_axes() {
    let mut r = rng(60);
    let shape = [4, 3, 5, 2];
    let (t, x) = rand_tensor(&mut r, &shape);
    let got = t.sum_axes(&[0, 2], false).unwrap();
    assert_eq!(got.shape(), &[3, 2]);
    assert_close(
        &read(&got),
        &cpu_sum_to(&x, &shape, &[1, 3, 1, 2]),
        1e-5,
        1e-5,
    );
    let got = t.sum_axes(&[-1, 0, 1], true).unwrap();
    assert_eq!(got.shape(), &[1, 1, 5, 1]);
    assert_close(
        &read(&got),
        &cpu_sum_to(&x, &shape, &[1, 1, 5, 1]),
        1e-5,
        1e-5,
    );
    let got = t.sum_axes(&[0, 1, 2, 3], false).unwrap();
    assert_eq!(got.shape(), &[] as &[usize]);
    assert_close(&read(&got), &cpu_sum_to(&x, &shape, &[]), 1e-5, 1e-5);
    assert_eq!(read(&t.sum_axes(&[], false).unwrap()), x);
    assert!(matches!(
        t.sum_axes(&[1, -3], false),
        Err(Error::InvalidArgument { op: "sum_axes", .. })
    ));
    assert!(matches!(
        t.sum_axes(&[4], false),
        Err(Error::AxisOutOfRange {
            op: "sum_axes",
            axis: 4,
            ..
        })
    ));
}

#[test]
fn misuse_is_an_error() {
    let t = tensor(&[1.0; 6], &[2, 3]);
    let checks: Vec<(&str, cinder_device::Result<DeviceTensor>)> = vec![
        ("sum_axis", t.sum_axis(2, false)),
        ("mean_axis", t.mean_axis(-3, false)),
        ("amax_axis", t.amax_axis(5, true)),
        ("amin_axis", t.amin_axis(-4, false)),
        ("argmax_axis", t.argmax_axis(2, false)),
        ("argmin_axis", t.argmin_axis(2, false)),
        ("logsumexp_axis", t.logsumexp_axis(2, false)),
        ("var_axis", t.var_axis(2, true, false)),
    ];
    for (name, res) in checks {
        match res {
            Err(Error::AxisOutOfRange { op, .. }) => assert_eq!(op, name),
            other => panic!("{name}: expected AxisOutOfRange, got {other:?}"),
        }
    }
    let s = DeviceTensor::scalar(&dev(), 1.0).unwrap();
    assert!(matches!(
        s.sum_axis(0, false),
        Err(Error::AxisOutOfRange { op: "sum_axis", .. })
    ));
    let u = DeviceTensor::from_slice(&dev(), &[1u32, 2, 3], &[3]).unwrap();
    let checks: Vec<(&str, cinder_device::Result<DeviceTensor>)> = vec![
        ("sum_axis", u.sum_axis(0, false)),
        ("mean_axis", u.mean_axis(0, false)),
        ("argmax_axis", u.argmax_axis(0, false)),
        ("var_axis", u.var_axis(0, true, false)),
        ("sum_all", u.sum_all()),
        ("max_all", u.max_all()),
        ("argmax_all", u.argmax_all()),
        ("logsumexp_all", u.logsumexp_all()),
        ("var_all", u.var_all(false)),
        ("sum_axes", u.sum_axes(&[0], false)),
        ("sum_to_shape", u.sum_to_shape(&[1])),
    ];
    for (name, res) in checks {
        match res {
            Err(Error::DtypeMismatch { op, .. }) => assert_eq!(op, name),
            other => panic!("{name}: expected DtypeMismatch, got {other:?}"),
        }
    }
}

/// NaN propagates through max/min and arg* (the first NaN wins), at the first, a middle and
/// the last position of each row, along short rows (one invocation per output), long rows
/// (the tree) and the whole tensor; infinities are ordinary values.
#[test]
fn nan_propagates_through_extrema() {
    for (rows, len) in [(6usize, 9usize), (6, 5000), (1, 300_001)] {
        let mut r = rng(len as u64);
        let mut x = uniform(&mut r, rows * len, -1.0, 1.0);
        let middle = len / 2 + 1;
        // row 0: no NaN, row 1: first, row 2: middle, row 3: last, row 4: two NaNs,
        // row 5: +-inf and no NaN
        let at = |row: usize, k: usize| row * len + k;
        if rows > 1 {
            x[at(1, 0)] = f32::NAN;
            x[at(2, middle)] = f32::NAN;
            x[at(3, len - 1)] = f32::NAN;
            x[at(4, middle)] = f32::NAN;
            x[at(4, 1)] = f32::NAN;
            x[at(5, 2)] = f32::INFINITY;
            x[at(5, middle)] = f32::NEG_INFINITY;
        } else {
            x[middle] = f32::NAN;
            x[len - 1] = f32::NAN;
            x[3] = f32::INFINITY;
        }
        let t = tensor(&x, &[rows, len]);
        let shape = [rows, len];
        let want = |f: fn(&[f64]) -> f64| f32s(cpu_rows(&x, &shape, 1, f));
        assert_close(&read(&t.amax_axis(1, false).unwrap()), &want(max), 0.0, 0.0);
        assert_close(&read(&t.amin_axis(1, false).unwrap()), &want(min), 0.0, 0.0);
        let am = cpu_rows(&x, &shape, 1, argmax);
        let an = cpu_rows(&x, &shape, 1, argmin);
        assert_eq!(
            read_u32(&t.argmax_axis(1, false).unwrap()),
            am,
            "argmax {len}"
        );
        assert_eq!(
            read_u32(&t.argmin_axis(1, false).unwrap()),
            an,
            "argmin {len}"
        );
        let (v, i) = t.max_axis(1, false).unwrap();
        assert_close(&read(&v), &want(max), 0.0, 0.0);
        assert_eq!(read_u32(&i), am);
        let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        assert!(read(&t.max_all().unwrap())[0].is_nan());
        assert!(read(&t.min_all().unwrap())[0].is_nan());
        assert_eq!(read_u32(&t.argmax_all().unwrap()), vec![argmax(&xd)]);
        assert_eq!(read_u32(&t.argmin_all().unwrap()), vec![argmin(&xd)]);
        // along axis 0 as well (strided rows)
        let shape0 = [rows, len];
        let am0 = cpu_rows(&x, &shape0, 0, argmax);
        assert_eq!(read_u32(&t.argmax_axis(0, false).unwrap()), am0);
    }
}
