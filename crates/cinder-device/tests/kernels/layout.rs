//! Layout kernels against plain Rust.

use super::common::*;
use cinder_device::{DType, DeviceTensor, Error};

fn cpu_permute(x: &[f32], shape: &[usize], dims: &[usize]) -> Vec<f32> {
    let st = cinder_device::shape::strides(shape);
    let out_shape: Vec<usize> = dims.iter().map(|&d| shape[d]).collect();
    let n: usize = shape.iter().product();
    (0..n)
        .map(|mut lin| {
            let mut off = 0;
            for k in (0..out_shape.len()).rev() {
                off += (lin % out_shape[k]) * st[dims[k]];
                lin /= out_shape[k];
            }
            x[off]
        })
        .collect()
}

#[test]
fn permute_and_transpose_match_cpu() {
    let mut r = rng(20);
    for (shape, dims) in [
        (vec![3, 5], vec![1, 0]),
        (vec![2, 3, 4], vec![2, 0, 1]),
        (vec![2, 1, 3, 5], vec![3, 1, 0, 2]),
        (vec![4, 3, 1, 2, 5], vec![0, 1, 2, 4, 3]),
        (vec![7], vec![0]),
    ] {
        let (t, x) = rand_tensor(&mut r, &shape);
        let p = t.permute(&dims).unwrap();
        let want_shape: Vec<usize> = dims.iter().map(|&d| shape[d]).collect();
        assert_eq!(p.shape(), &want_shape[..]);
        assert_eq!(read(&p), cpu_permute(&x, &shape, &dims));
    }
    let (t, x) = rand_tensor(&mut r, &[3, 4, 5]);
    assert_eq!(
        read(&t.transpose(-1, 0).unwrap()),
        cpu_permute(&x, &[3, 4, 5], &[2, 1, 0])
    );
    let m = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(read(&m.t().unwrap()), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    // u32 tensors move bit-exactly.
    let u = DeviceTensor::from_slice(&dev(), &[1u32, 2, 3, u32::MAX, 5, 6], &[2, 3]).unwrap();
    assert_eq!(read_u32(&u.t().unwrap()), vec![1, u32::MAX, 2, 5, 3, 6]);
}

#[test]
fn narrow_slice_concat_match_cpu() {
    let mut r = rng(21);
    let (t, x) = rand_tensor(&mut r, &[4, 5, 3]);
    let n = t.narrow(1, 1, 3).unwrap();
    assert_eq!(n.shape(), &[4, 3, 3]);
    let mut want = Vec::new();
    for a in 0..4 {
        for b in 1..4 {
            for c in 0..3 {
                want.push(x[(a * 5 + b) * 3 + c]);
            }
        }
    }
    assert_eq!(read(&n), want);
    let s = t.slice(-1, 2, 3).unwrap();
    assert_eq!(s.shape(), &[4, 5, 1]);
    assert_eq!(
        read(&s),
        x.iter().skip(2).step_by(3).copied().collect::<Vec<_>>()
    );

    let (a, av) = rand_tensor(&mut r, &[2, 3, 2]);
    let (b, bv) = rand_tensor(&mut r, &[2, 1, 2]);
    let c = DeviceTensor::concat(&[&a, &b], 1).unwrap();
    assert_eq!(c.shape(), &[2, 4, 2]);
    let mut want = Vec::new();
    for i in 0..2 {
        want.extend_from_slice(&av[i * 6..i * 6 + 6]);
        want.extend_from_slice(&bv[i * 2..i * 2 + 2]);
    }
    assert_eq!(read(&c), want);
    let c0 = DeviceTensor::concat(&[&a, &a], 0).unwrap();
    assert_eq!(read(&c0), [av.clone(), av.clone()].concat());
}

#[test]
fn pad_matches_cpu() {
    let x = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1, 2, 3]);
    let p = x.pad(&[(1, 0), (0, 2)], -1.0).unwrap();
    assert_eq!(p.shape(), &[1, 3, 5]);
    #[rustfmt::skip]
    let want = vec![
        -1.0, -1.0, -1.0, -1.0, -1.0,
        1.0, 2.0, 3.0, -1.0, -1.0,
        4.0, 5.0, 6.0, -1.0, -1.0,
    ];
    assert_eq!(read(&p), want);
    let p2 = x.pad(&[(1, 1), (0, 0), (2, 1)], 0.0).unwrap();
    assert_eq!(p2.shape(), &[3, 2, 6]);
    let v = read(&p2);
    assert_eq!(v.iter().filter(|&&e| e != 0.0).count(), 6);
    assert_eq!(&v[12..18], &[0.0, 0.0, 1.0, 2.0, 3.0, 0.0]);
}

#[test]
fn arange_eye_and_casts() {
    let d = dev();
    assert_eq!(
        read(&DeviceTensor::arange(&d, 1.0, 2.0, 0.25).unwrap()),
        vec![1.0, 1.25, 1.5, 1.75]
    );
    assert_eq!(
        read(&DeviceTensor::arange(&d, 3.0, 0.0, -1.0).unwrap()),
        vec![3.0, 2.0, 1.0]
    );
    assert_eq!(
        read_u32(&DeviceTensor::arange_u32(&d, 5).unwrap()),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        read(&DeviceTensor::eye(&d, 2, 3).unwrap()),
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    );
    let f = tensor(&[-1.5, 0.0, 0.99, 1.0, 2.7, 7e9], &[6]);
    let u = f.to_dtype(DType::U32).unwrap();
    assert_eq!(read_u32(&u), vec![0, 0, 0, 1, 2, u32::MAX]);
    assert_eq!(
        read(&u.to_dtype(DType::F32).unwrap()),
        vec![0.0, 0.0, 0.0, 1.0, 2.0, 4294967296.0]
    );
}

#[test]
fn layout_misuse_is_an_error() {
    let t = tensor(&[0.0; 6], &[2, 3]);
    assert!(matches!(
        t.permute(&[0, 0]),
        Err(Error::InvalidArgument { op: "permute", .. })
    ));
    assert!(matches!(
        t.permute(&[1]),
        Err(Error::InvalidArgument { op: "permute", .. })
    ));
    assert!(matches!(
        t.transpose(0, 2),
        Err(Error::AxisOutOfRange {
            op: "transpose",
            ..
        })
    ));
    assert!(matches!(
        t.narrow(1, 2, 2),
        Err(Error::InvalidArgument { op: "narrow", .. })
    ));
    assert!(matches!(
        t.slice(0, 2, 1),
        Err(Error::InvalidArgument { op: "slice", .. })
    ));
    let other = tensor(&[0.0; 4], &[2, 2]);
    assert!(matches!(
        DeviceTensor::concat(&[&t, &other], 0),
        Err(Error::ShapeMismatch { op: "concat", .. })
    ));
    assert!(matches!(
        DeviceTensor::concat(&[], 0),
        Err(Error::InvalidArgument { op: "concat", .. })
    ));
    let u = DeviceTensor::from_slice(&dev(), &[0u32; 6], &[2, 3]).unwrap();
    assert!(matches!(
        DeviceTensor::concat(&[&t, &u], 0),
        Err(Error::DtypeMismatch { op: "concat", .. })
    ));
    assert!(matches!(
        t.pad(&[(1, 1); 3], 0.0),
        Err(Error::InvalidArgument { op: "pad", .. })
    ));
    assert!(matches!(
        DeviceTensor::arange(&dev(), 0.0, 1.0, 0.0),
        Err(Error::InvalidArgument { op: "arange", .. })
    ));
    assert!(matches!(
        t.t().unwrap().reshape(&[3, 2]).unwrap().narrow(5, 0, 1),
        Err(Error::AxisOutOfRange { .. })
    ));
}

#[test]
fn transpose_of_many_small_matrices_uses_the_general_path() {
    // 70,000 batched 2 x 3 matrices: more blocks than one grid dimension holds.
    let mut r = rng(22);
    let (t, x) = rand_tensor(&mut r, &[70_000, 2, 3]);
    let got = read(&t.transpose(-1, -2).unwrap());
    assert_eq!(got, cpu_permute(&x, &[70_000, 2, 3], &[0, 2, 1]));
    let (t, x) = rand_tensor(&mut r, &[3, 37, 21]);
    assert_eq!(
        read(&t.transpose(1, 2).unwrap()),
        cpu_permute(&x, &[3, 37, 21], &[0, 2, 1])
    );
}
