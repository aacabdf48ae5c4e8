//! Matmul, every kernel and transpose combination, against a CPU triple loop.

use super::common::*;
use cinder_device::{DeviceTensor, Error, MatmulKernel};

fn cpu(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for kk in 0..k {
                let av = if ta { a[kk * m + i] } else { a[i * k + kk] };
                let bv = if tb { b[j * k + kk] } else { b[kk * n + j] };
                s += av as f64 * bv as f64;
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}

const KERNELS: [MatmulKernel; 4] = [
    MatmulKernel::Auto,
    MatmulKernel::Naive,
    MatmulKernel::Blocked,
    MatmulKernel::Tiled,
];

#[test]
fn every_kernel_and_transpose_matches_cpu() {
    let mut r = rng(10);
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 9),
        (64, 64, 64),
        (65, 31, 130),
        (129, 70, 257),
        (8, 19, 16),
    ] {
        for ta in [false, true] {
            for tb in [false, true] {
                let (a, av) = rand_tensor(&mut r, &(if ta { [k, m] } else { [m, k] }));
                let (b, bv) = rand_tensor(&mut r, &(if tb { [n, k] } else { [k, n] }));
                let want = cpu(&av, &bv, m, k, n, ta, tb);
                for kern in KERNELS {
                    let c = a.matmul_with(&b, ta, tb, kern).unwrap();
                    assert_eq!(c.shape(), &[m, n]);
                    assert_close(&read(&c), &want, 1e-5, 1e-4);
                }
            }
        }
    }
}

#[test]
fn batched_matmul_with_broadcast_batch() {
    let mut r = rng(11);
    let (a, av) = rand_tensor(&mut r, &[2, 3, 4, 5]);
    let (b, bv) = rand_tensor(&mut r, &[5, 6]);
    let (b3, b3v) = rand_tensor(&mut r, &[6, 5, 6]);
    for kern in KERNELS {
        let c = a.matmul_with(&b, false, false, kern).unwrap();
        assert_eq!(c.shape(), &[2, 3, 4, 6]);
        let got = read(&c);
        let c3 = a
            .reshape(&[6, 4, 5])
            .unwrap()
            .matmul_with(&b3, false, false, kern)
            .unwrap();
        let got3 = read(&c3);
        for bi in 0..6 {
            let want = cpu(&av[bi * 20..(bi + 1) * 20], &bv, 4, 5, 6, false, false);
            assert_close(&got[bi * 24..(bi + 1) * 24], &want, 1e-5, 1e-4);
            let want3 = cpu(
                &av[bi * 20..(bi + 1) * 20],
                &b3v[bi * 30..(bi + 1) * 30],
                4,
                5,
                6,
                false,
                false,
            );
            assert_close(&got3[bi * 24..(bi + 1) * 24], &want3, 1e-5, 1e-4);
        }
        // a shared left operand: [4, 5] x [6, 5, 6]
        let l = a
            .narrow(0, 0, 1)
            .unwrap()
            .reshape(&[3, 4, 5])
            .unwrap()
            .narrow(0, 0, 1)
            .unwrap()
            .reshape(&[4, 5])
            .unwrap();
        let c4 = l.matmul_with(&b3, false, false, kern).unwrap();
        assert_eq!(c4.shape(), &[6, 4, 6]);
        let want4 = cpu(&av[..20], &b3v[30..60], 4, 5, 6, false, false);
        assert_close(&read(&c4)[24..48], &want4, 1e-5, 1e-4);
    }
}

#[test]
fn empty_inner_dimension_gives_zeros() {
    let a = DeviceTensor::zeros(&dev(), &[3, 0]).unwrap();
    let b = DeviceTensor::zeros(&dev(), &[0, 4]).unwrap();
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.shape(), &[3, 4]);
    assert_eq!(read(&c), vec![0.0; 12]);
}

#[test]
fn matmul_misuse_is_an_error() {
    let a = tensor(&[0.0; 6], &[2, 3]);
    match a.matmul(&tensor(&[0.0; 8], &[2, 4])) {
        Err(Error::ShapeMismatch { op, lhs, rhs }) => {
            assert_eq!(op, "matmul");
            assert_eq!((lhs, rhs), (vec![2, 3], vec![2, 4]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        a.matmul(&tensor(&[0.0; 4], &[4])),
        Err(Error::ShapeMismatch { op: "matmul", .. })
    ));
    assert!(matches!(
        a.matmul(&DeviceTensor::scalar(&dev(), 1.0).unwrap()),
        Err(Error::ShapeMismatch { op: "matmul", .. })
    ));
    let u = DeviceTensor::from_slice(&dev(), &[0u32; 6], &[3, 2]).unwrap();
    assert!(matches!(
        a.matmul(&u),
        Err(Error::DtypeMismatch { op: "matmul", .. })
    ));
    let b = tensor(&[0.0; 24], &[2, 3, 4]);
    let c = tensor(&[0.0; 36], &[3, 3, 4]);
    assert!(matches!(
        b.matmul_t(&c, true, false),
        Err(Error::ShapeMismatch { op: "matmul", .. })
    ));
}

/// `torch.matmul`'s rules: batches broadcast against each other (`[2, 1, 4, 5] @ [3, 5, 6]`
/// is `[2, 3, 4, 6]`), a batch of ones is kept in the output's rank, and 1-D operands are
/// vectors whose dimension leaves the result.
#[test]
fn batches_broadcast_and_vectors_as_in_torch_matmul() {
    let mut r = rng(44);
    let (a, av) = rand_tensor(&mut r, &[2, 1, 4, 5]);
    let (b, bv) = rand_tensor(&mut r, &[3, 5, 6]);
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.shape(), &[2, 3, 4, 6]);
    let got = read(&c);
    for i in 0..2 {
        for j in 0..3 {
            let want = cpu(
                &av[i * 20..i * 20 + 20],
                &bv[j * 30..j * 30 + 30],
                4,
                5,
                6,
                false,
                false,
            );
            let at = (i * 3 + j) * 24;
            assert_close(&got[at..at + 24], &want, 1e-5, 1e-5);
        }
    }
    // a batch of ones keeps its rank: [1, 1, 4, 5] @ [3, 5, 6] is [1, 3, 4, 6]
    let a1 = a.narrow(0, 0, 1).unwrap();
    assert_eq!(a1.matmul(&b).unwrap().shape(), &[1, 3, 4, 6]);
    // vectors
    let (v5, vv) = rand_tensor(&mut r, &[5]);
    let m = a.narrow(0, 0, 1).unwrap().reshape(&[4, 5]).unwrap();
    let mv = m.matmul(&v5).unwrap();
    assert_eq!(mv.shape(), &[4]);
    assert_close(
        &read(&mv),
        &cpu(&av[..20], &vv, 4, 5, 1, false, false),
        1e-5,
        1e-5,
    );
    let vm = v5.matmul(&b).unwrap();
    assert_eq!(vm.shape(), &[3, 6]);
    let (w5, wv) = rand_tensor(&mut r, &[5]);
    let dot = v5.matmul(&w5).unwrap();
    assert_eq!(dot.shape(), &[] as &[usize]);
    let want: f32 = vv.iter().zip(&wv).map(|(x, y)| x * y).sum();
    assert_close(&read(&dot), &[want], 1e-5, 1e-5);
    // with a transpose flag: [3, 5, 6]^T @ [5] is [3, 6]
    let bt = b.matmul_t(&v5, true, false).unwrap();
    assert_eq!(bt.shape(), &[3, 6]);
    // batches that do not broadcast
    let (p, _) = rand_tensor(&mut r, &[2, 4, 5]);
    assert!(matches!(
        p.matmul(&b),
        Err(Error::ShapeMismatch { op: "matmul", .. })
    ));
}

/// The fused epilogue (bias along columns or rows, then ReLU) on every kernel, transpose
/// combination and a batch, against the CPU product plus the same epilogue; NaN passes the
/// ReLU as the relu op lets it.
#[test]
fn fused_epilogue_matches_cpu() {
    use cinder_device::{BiasAxis, Epilogue};
    let mut r = rng(11);
    for &(batch, m, k, n) in &[(1, 3, 5, 7), (2, 17, 33, 9), (3, 65, 31, 130), (1, 9, 0, 4)] {
        for ta in [false, true] {
            for tb in [false, true] {
                let ash = if ta { [batch, k, m] } else { [batch, m, k] };
                let bsh = if tb { [batch, n, k] } else { [batch, k, n] };
                let (a, av) = rand_tensor(&mut r, &ash);
                let (b, bv) = rand_tensor(&mut r, &bsh);
                let (cb, cbv) = rand_tensor(&mut r, &[n]);
                let (mut rb, mut rbv) = rand_tensor(&mut r, &[m]);
                if m > 2 {
                    rbv[2] = f32::NAN;
                    rb = DeviceTensor::from_slice(a.device(), &rbv, &[m]).unwrap();
                }
                for (axis, bias, bv_) in [
                    (None, None, &[][..]),
                    (Some(BiasAxis::Cols), Some(&cb), &cbv[..]),
                    (Some(BiasAxis::Rows), Some(&rb), &rbv[..]),
                ] {
                    for relu in [false, true] {
                        let mut want = Vec::new();
                        for bi in 0..batch {
                            let c = cpu(
                                &av[bi * m * k..(bi + 1) * m * k],
                                &bv[bi * k * n..(bi + 1) * k * n],
                                m,
                                k,
                                n,
                                ta,
                                tb,
                            );
                            for i in 0..m {
                                for j in 0..n {
                                    let mut v = c[i * n + j];
                                    match axis {
                                        Some(BiasAxis::Cols) => v += bv_[j],
                                        Some(BiasAxis::Rows) => v += bv_[i],
                                        None => {}
                                    }
                                    if relu && !v.is_nan() {
                                        v = v.max(0.0);
                                    }
                                    want.push(v);
                                }
                            }
                        }
                        let e = Epilogue {
                            bias: bias.map(|t| (t, axis.unwrap())),
                            relu,
                        };
                        for kern in KERNELS {
                            let c = a.matmul_fused(&b, ta, tb, kern, e).unwrap();
                            assert_eq!(c.shape(), &[batch, m, n]);
                            let got = read(&c);
                            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                                if w.is_nan() {
                                    assert!(g.is_nan(), "{kern:?} {i}: {g}, want NaN");
                                } else {
                                    assert!(
                                        (g - w).abs() <= 1e-4 + 1e-4 * w.abs(),
                                        "{kern:?} ta {ta} tb {tb} {axis:?} relu {relu} [{i}]: {g} vs {w}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn fused_epilogue_refuses_a_bias_of_the_wrong_length() {
    use cinder_device::{BiasAxis, Epilogue};
    let mut r = rng(12);
    let (a, _) = rand_tensor(&mut r, &[4, 3]);
    let (b, _) = rand_tensor(&mut r, &[3, 5]);
    let (bias, _) = rand_tensor(&mut r, &[4]);
    for (axis, ok) in [(BiasAxis::Cols, false), (BiasAxis::Rows, true)] {
        let e = Epilogue {
            bias: Some((&bias, axis)),
            relu: false,
        };
        let got = a.matmul_fused(&b, false, false, MatmulKernel::Auto, e);
        assert_eq!(got.is_ok(), ok, "{axis:?}");
        if let Err(err) = got {
            assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        }
    }
}
