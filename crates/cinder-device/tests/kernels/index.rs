//! Index kernels against plain Rust.

use super::common::*;
use cinder_device::{DeviceTensor, Error};
use rand::RngExt;

fn idx(data: &[u32], shape: &[usize]) -> DeviceTensor {
    DeviceTensor::from_slice(&dev(), data, shape).unwrap()
}

#[test]
fn gather_matches_cpu_on_each_axis() {
    let mut r = rng(30);
    let shape = [3usize, 4, 5];
    let (t, x) = rand_tensor(&mut r, &shape);
    for axis in 0..3 {
        let mut ishape = shape.to_vec();
        ishape[axis] = 2 + axis; // fewer or more entries than the axis
        let n: usize = ishape.iter().product();
        let iv: Vec<u32> = (0..n)
            .map(|_| r.random_range(0..shape[axis] as u32))
            .collect();
        let g = t.gather(axis as isize, &idx(&iv, &ishape)).unwrap();
        assert_eq!(g.shape(), &ishape[..]);
        let want: Vec<f32> = (0..n)
            .map(|lin| {
                let c = [
                    lin / (ishape[1] * ishape[2]),
                    (lin / ishape[2]) % ishape[1],
                    lin % ishape[2],
                ];
                let mut src = c;
                src[axis] = iv[lin] as usize;
                x[(src[0] * shape[1] + src[1]) * shape[2] + src[2]]
            })
            .collect();
        assert_eq!(read(&g), want);
    }
}

#[test]
fn index_select_and_backward_match_cpu() {
    let mut r = rng(31);
    let (t, x) = rand_tensor(&mut r, &[4, 3, 2]);
    let iv = [2u32, 0, 2, 3, 1];
    let s = t.index_select(0, &idx(&iv, &[5])).unwrap();
    assert_eq!(s.shape(), &[5, 3, 2]);
    let want: Vec<f32> = iv
        .iter()
        .flat_map(|&i| x[i as usize * 6..i as usize * 6 + 6].to_vec())
        .collect();
    assert_eq!(read(&s), want);
    let s1 = t.index_select(1, &idx(&[1, 1], &[2])).unwrap();
    assert_eq!(s1.shape(), &[4, 2, 2]);
    assert_eq!(read(&s1)[..4], [x[2], x[3], x[2], x[3]]);

    let (g, gv) = rand_tensor(&mut r, &[5, 3, 2]);
    let back = g.index_select_backward(0, &idx(&iv, &[5]), 4).unwrap();
    let mut want = vec![0.0f32; 24];
    for (j, &i) in iv.iter().enumerate() {
        for e in 0..6 {
            want[i as usize * 6 + e] += gv[j * 6 + e];
        }
    }
    assert_close(&read(&back), &want, 1e-6, 1e-6);
}

#[test]
fn scatter_add_matches_cpu_and_ignores_out_of_range() {
    let mut r = rng(32);
    let (base, bv) = rand_tensor(&mut r, &[3, 4]);
    let (src, sv) = rand_tensor(&mut r, &[3, 6]);
    let mut iv: Vec<u32> = (0..18).map(|_| r.random_range(0..4u32)).collect();
    iv[5] = 99; // out of range: contributes nothing
    let out = base.scatter_add(1, &idx(&iv, &[3, 6]), &src).unwrap();
    let mut want = bv.clone();
    for row in 0..3 {
        for j in 0..6 {
            let l = iv[row * 6 + j] as usize;
            if l < 4 {
                want[row * 4 + l] += sv[row * 6 + j];
            }
        }
    }
    assert_close(&read(&out), &want, 1e-6, 1e-6);
    // gather reads 0 for an out-of-range index
    let g = base.gather(1, &idx(&[0, 7, 3, 0, 0, 0], &[3, 2])).unwrap();
    assert_eq!(read(&g), vec![bv[0], 0.0, bv[7], bv[4], bv[8], bv[8]]);
}

#[test]
fn one_hot_matches_cpu() {
    let o = idx(&[2, 0, 3, 9], &[2, 2]).one_hot(4).unwrap();
    assert_eq!(o.shape(), &[2, 2, 4]);
    #[rustfmt::skip]
    let want = vec![
        0.0, 0.0, 1.0, 0.0,  1.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 1.0,  0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(read(&o), want);
}

#[test]
fn index_misuse_is_an_error() {
    let t = tensor(&[0.0; 6], &[2, 3]);
    let fidx = tensor(&[0.0; 2], &[2]);
    assert!(matches!(
        t.index_select(0, &fidx),
        Err(Error::DtypeMismatch {
            op: "index_select",
            ..
        })
    ));
    assert!(matches!(
        t.index_select(2, &idx(&[0], &[1])),
        Err(Error::AxisOutOfRange {
            op: "index_select",
            ..
        })
    ));
    assert!(matches!(
        t.gather(0, &idx(&[0; 4], &[2, 2])),
        Err(Error::ShapeMismatch { op: "gather", .. })
    ));
    assert!(matches!(
        t.scatter_add(1, &idx(&[0; 4], &[2, 2]), &t),
        Err(Error::ShapeMismatch {
            op: "scatter_add",
            ..
        })
    ));
    assert!(matches!(
        t.one_hot(3),
        Err(Error::DtypeMismatch { op: "one_hot", .. })
    ));
    assert!(matches!(
        idx(&[1], &[1]).one_hot(0),
        Err(Error::InvalidArgument { op: "one_hot", .. })
    ));
}
