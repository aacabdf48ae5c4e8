//! Elementwise kernels against plain Rust.

use super::common::*;
use cinder_device::{BinaryOp, DeviceTensor, Error, UnaryOp};

fn domain(op: UnaryOp) -> (f32, f32) {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => (0.05, 4.0),
        UnaryOp::Recip => (0.2, 3.0),
        // negative arguments (reflection, near the poles) are covered by gamma_functions
        UnaryOp::Lgamma | UnaryOp::Digamma | UnaryOp::Trigamma => (0.05, 30.0),
        UnaryOp::Powf => (0.1, 3.0),
        UnaryOp::SigmoidGradFromOutput | UnaryOp::TanhGradFromOutput => (-1.0, 1.0),
        _ => (-6.0, 6.0),
    }
}

#[test]
fn unary_ops_match_cpu() {
    let mut r = rng(1);
    let n = 1037; // not a multiple of the workgroup size
    for op in UnaryOp::ALL {
        let (lo, hi) = domain(op);
        let mut x = uniform(&mut r, n, lo, hi);
        x[0] = lo;
        let (a, b) = match op {
            UnaryOp::Clamp => (-0.5, 0.75),
            UnaryOp::Powf => (2.5, 0.0),
            UnaryOp::Affine => (1.5, -0.25),
            _ => (0.1, 0.0),
        };
        let got = read(&tensor(&x, &[n]).unary(op, a, b).unwrap());
        let want: Vec<f32> = x.iter().map(|&v| op.reference(v, a, b)).collect();
        assert_close(&got, &want, 2e-6, 2e-5);
        let _ = op;
    }
}

#[test]
fn gamma_functions_match_f64_at_edges() {
    let x = [
        f32::NAN,
        f32::NEG_INFINITY,
        f32::INFINITY,
        0.0,
        -0.0,
        1.0,
        2.0,
        -1.0,
        -3.0,
        1e-20,
        1.4616321,
        -0.5,
        -2.25,
        -7.75,
        0.3,
        150.0,
        1e6,
    ];
    let t = tensor(&x, &[x.len()]);
    for op in [UnaryOp::Lgamma, UnaryOp::Digamma, UnaryOp::Trigamma] {
        let got = read(&t.unary(op, 0.0, 0.0).unwrap());
        for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
            let w = op.reference(v, 0.0, 0.0);
            let ok = if w.is_nan() {
                g.is_nan()
            } else if w.is_infinite() {
                g == w
            } else {
                (g - w).abs() <= 2e-5 + 2e-5 * w.abs()
            };
            assert!(ok, "{op:?}({v}) [{i}]: got {g}, want {w}");
        }
    }
    // known values
    let d = read(&tensor(&[1.0, 0.5, 10.0], &[3]).digamma().unwrap());
    assert_close(&d, &[-0.5772157, -1.96351, 2.2517526], 1e-6, 1e-6);
    let l = read(&tensor(&[0.5, 3.0, 100.0], &[3]).lgamma().unwrap());
    assert_close(
        &l,
        &[0.5723649, std::f32::consts::LN_2, 359.1342],
        1e-6,
        1e-6,
    );
    let u = DeviceTensor::from_slice(&dev(), &[1u32, 2], &[2]).unwrap();
    assert!(u.digamma().is_err());
}

#[test]
fn unary_stability_at_extremes() {
    let x = [-1000.0f32, -88.0, -20.0, 0.0, 20.0, 88.0, 1000.0];
    let t = tensor(&x, &[7]);
    let sig = read(&t.sigmoid().unwrap());
    assert_close(
        &sig,
        &[0.0, 0.0, 2.0611537e-9, 0.5, 1.0, 1.0, 1.0],
        1e-12,
        1e-5,
    );
    let th = read(&t.tanh().unwrap());
    assert_close(&th, &[-1.0, -1.0, -1.0, 0.0, 1.0, 1.0, 1.0], 0.0, 1e-6);
    let sp = read(&t.softplus().unwrap());
    assert_close(
        &sp,
        &[
            0.0,
            0.0,
            2.0611537e-9,
            std::f32::consts::LN_2,
            20.0,
            88.0,
            1000.0,
        ],
        1e-12,
        1e-5,
    );
    assert!(sp.iter().chain(&sig).chain(&th).all(|v| v.is_finite()));
}

#[test]
fn powf_follows_pytorch_for_negative_bases() {
    let t = tensor(&[-2.0, -2.0, 0.0, 0.0, 3.0], &[5]);
    let sq = read(&t.powf(2.0).unwrap());
    assert_close(&sq, &[4.0, 4.0, 0.0, 0.0, 9.0], 1e-6, 1e-6);
    let cube = read(&t.powf(3.0).unwrap());
    assert_close(&cube, &[-8.0, -8.0, 0.0, 0.0, 27.0], 1e-5, 1e-6);
    let half = read(&t.powf(0.5).unwrap());
    assert!(half[0].is_nan());
    let inv = read(&t.powf(-1.0).unwrap());
    assert_eq!(inv[2], f32::INFINITY);
}

#[test]
fn binary_same_shape_and_scalar_match_cpu() {
    let mut r = rng(2);
    let n = 777;
    let a = uniform(&mut r, n, 0.5, 2.0);
    let mut b = uniform(&mut r, n, -2.0, 2.0);
    b[3] = a[3]; // equality cases for the comparisons
    b[5] = a[5];
    let (ta, tb) = (tensor(&a, &[n]), tensor(&b, &[n]));
    for op in BinaryOp::ALL {
        let got = read(&ta.binary(op, &tb).unwrap());
        let want: Vec<f32> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| op.reference(x, y))
            .collect();
        assert_close(&got, &want, 1e-6, 1e-5);
        let s = 0.75;
        let got = read(&ta.binary_scalar(op, s, false).unwrap());
        let want: Vec<f32> = a.iter().map(|&x| op.reference(x, s)).collect();
        assert_close(&got, &want, 1e-6, 1e-5);
        let got = read(&ta.binary_scalar(op, s, true).unwrap());
        let want: Vec<f32> = a.iter().map(|&x| op.reference(s, x)).collect();
        assert_close(&got, &want, 1e-6, 1e-5);
    }
}

fn cpu_broadcast(
    op: BinaryOp,
    a: &[f32],
    sa: &[usize],
    b: &[f32],
    sb: &[usize],
    out: &[usize],
) -> Vec<f32> {
    let n: usize = out.iter().product();
    let idx = |shape: &[usize], coord: &[usize]| -> usize {
        let off = coord.len() - shape.len();
        let mut i = 0;
        for d in 0..shape.len() {
            let c = if shape[d] == 1 { 0 } else { coord[d + off] };
            i = i * shape[d] + c;
        }
        i
    };
    (0..n)
        .map(|lin| {
            let mut coord = vec![0; out.len()];
            let mut rem = lin;
            for d in (0..out.len()).rev() {
                coord[d] = rem % out[d];
                rem /= out[d];
            }
            op.reference(a[idx(sa, &coord)], b[idx(sb, &coord)])
        })
        .collect()
}

#[test]
fn binary_broadcasting_matches_cpu() {
    let mut r = rng(3);
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 1, 5], &[4, 1]),
        (&[1], &[7, 3]),
        (&[2, 3, 4, 5], &[5]),
        (&[2, 1, 4, 1, 3], &[1, 5, 1, 6, 3]),
        (&[6, 1], &[1, 6]),
        (&[], &[3, 2]),
        (&[2, 1, 3, 1, 2, 1, 3, 1], &[1, 2, 1, 3, 1, 2, 1, 3]),
    ];
    for (sa, sb) in cases {
        let (ta, a) = rand_tensor(&mut r, sa);
        let (tb, b) = rand_tensor(&mut r, sb);
        let out = cinder_device::shape::broadcast_shapes("t", sa, sb).unwrap();
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Div,
            BinaryOp::Maximum,
            BinaryOp::Lt,
        ] {
            let got = ta.binary(op, &tb).unwrap();
            assert_eq!(got.shape(), &out[..]);
            assert_close(
                &read(&got),
                &cpu_broadcast(op, &a, sa, &b, sb, &out),
                1e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn more_than_eight_alternating_broadcast_dims_is_an_error() {
    let a = DeviceTensor::zeros(&dev(), &[2, 1, 2, 1, 2, 1, 2, 1, 2]).unwrap();
    let b = DeviceTensor::zeros(&dev(), &[1, 2, 1, 2, 1, 2, 1, 2, 1]).unwrap();
    assert!(matches!(
        a.add(&b),
        Err(Error::InvalidArgument { op: "add", .. })
    ));
}

#[test]
fn where_and_broadcast_to() {
    let c = tensor(&[1.0, 0.0, 1.0], &[3, 1]);
    let a = tensor(&[1.0, 2.0], &[1, 2]);
    let b = tensor(&[-1.0], &[1]);
    let w = DeviceTensor::where_cond(&c, &a, &b).unwrap();
    assert_eq!(w.shape(), &[3, 2]);
    assert_eq!(read(&w), vec![1.0, 2.0, -1.0, -1.0, 1.0, 2.0]);
    let e = a.broadcast_to(&[3, 2]).unwrap();
    assert_eq!(read(&e), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    assert!(matches!(
        a.broadcast_to(&[3, 3]),
        Err(Error::ShapeMismatch {
            op: "broadcast_to",
            ..
        })
    ));
}

#[test]
fn large_tensors_cover_every_element() {
    // 16.8M elements: each invocation handles 8 at a stride of the grid.
    let n = 256 * 65535 + 300;
    let x = DeviceTensor::full(&dev(), &[n], 2.0).unwrap();
    let y = x.mul_scalar(3.0).unwrap().add_scalar(1.0).unwrap();
    let v = read(&y);
    assert_eq!(v.len(), n);
    assert!(v.iter().all(|&e| e == 7.0), "every element written once");
}

#[test]
fn above_65535_workgroups_folds_into_2d() {
    // One invocation per output: 16,777,300 outputs in groups of 256 need 65,537
    // workgroups, more than one grid dimension holds.
    let n = 256 * 65535 + 340;
    let x = DeviceTensor::arange(&dev(), 0.0, n as f32, 1.0)
        .unwrap()
        .reshape(&[n, 1])
        .unwrap();
    let s = x.sum_axis(1, false).unwrap();
    assert_eq!(s.shape(), &[n]);
    let v = read(&s);
    let w = read(&x);
    assert_eq!(v, w, "every output written, from its own row");
}

#[test]
fn misuse_returns_errors_naming_the_op() {
    let a = tensor(&[1.0, 2.0, 3.0], &[3]);
    let b = tensor(&[1.0, 2.0], &[2]);
    match a.add(&b) {
        Err(Error::ShapeMismatch { op, lhs, rhs }) => {
            assert_eq!(op, "add");
            assert_eq!((lhs, rhs), (vec![3], vec![2]));
        }
        other => panic!("{other:?}"),
    }
    let u = DeviceTensor::from_slice(&dev(), &[1u32, 2, 3], &[3]).unwrap();
    assert!(matches!(u.exp(), Err(Error::DtypeMismatch { .. })));
    assert!(matches!(
        a.mul(&u),
        Err(Error::DtypeMismatch { op: "mul", .. })
    ));
    assert!(matches!(
        a.clamp(1.0, 0.0),
        Err(Error::InvalidArgument { op: "clamp", .. })
    ));
    let msg = a.add(&b).unwrap_err().to_string();
    assert!(
        msg.contains("add") && msg.contains("[3]") && msg.contains("[2]"),
        "{msg}"
    );
}

/// NaN and infinities through the max/min-like maps, as PyTorch: relu, clamp, maximum and
/// minimum (tensor and scalar forms) give NaN for NaN, sign and the relu mask follow
/// PyTorch's conventions, and isnan finds them.
#[test]
fn nan_and_infinities_propagate_as_pytorch() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let x = [nan, -1.0, 3.0, 0.0, -inf, inf, nan];
    let t = tensor(&x, &[7]);
    let relu = read(&t.relu().unwrap());
    assert_close(&relu, &[nan, 0.0, 3.0, 0.0, 0.0, inf, nan], 0.0, 0.0);
    let c = read(&t.clamp(-0.5, 0.5).unwrap());
    assert_close(&c, &[nan, -0.5, 0.5, 0.0, -0.5, 0.5, nan], 0.0, 0.0);
    assert_close(
        &read(&t.maximum_scalar(1.0).unwrap()),
        &[nan, 1.0, 3.0, 1.0, 1.0, inf, nan],
        0.0,
        0.0,
    );
    assert_close(
        &read(&t.minimum_scalar(1.0).unwrap()),
        &[nan, -1.0, 1.0, 0.0, -inf, 1.0, nan],
        0.0,
        0.0,
    );
    let other = tensor(&[1.0, nan, 2.0, -0.0, 5.0, 5.0, nan], &[7]);
    assert_close(
        &read(&t.maximum(&other).unwrap()),
        &[nan, nan, 3.0, 0.0, 5.0, inf, nan],
        0.0,
        0.0,
    );
    assert_close(
        &read(&t.minimum(&other).unwrap()),
        &[nan, nan, 2.0, 0.0, -inf, 5.0, nan],
        0.0,
        0.0,
    );
    // broadcast form
    let row = tensor(&[nan, 0.0], &[2, 1]);
    let m = read(&tensor(&[1.0, 2.0], &[1, 2]).maximum(&row).unwrap());
    assert!(m[0].is_nan() && m[1].is_nan());
    assert_eq!(&m[2..], &[1.0, 2.0]);
    assert_eq!(
        read(&t.sign().unwrap()),
        vec![0.0, -1.0, 1.0, 0.0, -1.0, 1.0, 0.0]
    );
    assert_eq!(
        read(&t.isnan().unwrap()),
        vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        read(&t.relu_mask().unwrap()),
        vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    );
    // comparisons with NaN are false, except !=
    assert_eq!(
        read(&t.eq(&t).unwrap()),
        vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    );
    assert_eq!(
        read(&t.ne(&t).unwrap()),
        vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        read(&t.ge_scalar(-inf).unwrap()),
        vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    );
}
