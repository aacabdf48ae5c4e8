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
fn scatter_add_matches_cpu() {
    let mut r = rng(32);
    let (base, bv) = rand_tensor(&mut r, &[3, 4]);
    let (src, sv) = rand_tensor(&mut r, &[3, 6]);
    let iv: Vec<u32> = (0..18).map(|_| r.random_range(0..4u32)).collect();
    let out = base.scatter_add(1, &idx(&iv, &[3, 6]), &src).unwrap();
    let mut want = bv.clone();
    for row in 0..3 {
        for j in 0..6 {
            let l = iv[row * 6 + j] as usize;
            want[row * 4 + l] += sv[row * 6 + j];
        }
    }
    assert_close(&read(&out), &want, 1e-6, 1e-6);
}

#[test]
fn one_hot_matches_cpu() {
    let o = idx(&[2, 0, 3, 1], &[2, 2]).one_hot(4).unwrap();
    assert_eq!(o.shape(), &[2, 2, 4]);
    #[rustfmt::skip]
    let want = vec![
        0.0, 0.0, 1.0, 0.0,  1.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 1.0,  0.0, 1.0, 0.0, 0.0,
    ];
    assert_eq!(read(&o), want);
}

/// The op's outcome at the first readback: `Err(IndexOutOfRange)` naming `op` and `index`.
#[track_caller]
fn assert_index_error(t: &DeviceTensor, op: &str, index: u32) {
    match t.to_vec::<f32>() {
        Err(Error::IndexOutOfRange { ops, index: i }) => {
            assert_eq!(ops, vec![op]);
            assert_eq!(i, index);
        }
        other => panic!("{op}: expected IndexOutOfRange, got {other:?}"),
    }
}

/// Out-of-range indices are an error, as in PyTorch, reported by the next readback (or
/// sync) of the thread that dispatched the op, then cleared; nothing is read back inside
/// the op, and other threads' readbacks do not see it.
#[test]
fn out_of_range_indices_are_reported_at_the_next_readback() {
    let base = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let g = base.gather(1, &idx(&[0, 7, 2, 0], &[2, 2])).unwrap();
    assert_index_error(&g, "gather", 7);
    assert_eq!(
        read(&g),
        vec![1.0, 0.0, 6.0, 4.0],
        "cleared after the report"
    );
    let s = base.index_select(0, &idx(&[1, 5, 2], &[3])).unwrap();
    assert_index_error(&s, "index_select", 5);
    let src = tensor(&[1.0; 4], &[2, 2]);
    let sa = base
        .scatter_add(1, &idx(&[0, 3, 1, 9], &[2, 2]), &src)
        .unwrap();
    assert_index_error(&sa, "scatter_add", 9);
    let b = src
        .index_select_backward(0, &idx(&[0, 4], &[2]), 3)
        .unwrap();
    assert_index_error(&b, "index_select_backward", 4);
    let o = idx(&[2, 0, 3, 9], &[2, 2]).one_hot(4).unwrap();
    assert_index_error(&o, "one_hot", 9);
    // an error is reported once even when later ops succeed, and sync reports it too
    let bad = base.gather(1, &idx(&[0, 3, 0, 0], &[2, 2])).unwrap();
    let fine = bad.add_scalar(1.0).unwrap();
    assert!(matches!(
        dev().sync(),
        Err(Error::IndexOutOfRange { index: 3, .. })
    ));
    assert_eq!(read(&fine), vec![2.0, 1.0, 5.0, 5.0]);
    // another thread's op does not fail this thread's readback
    let other = std::thread::spawn(|| {
        let b = tensor(&[1.0, 2.0], &[2]);
        let g = b.index_select(0, &idx(&[8], &[1])).unwrap();
        dev().flush();
        std::thread::sleep(std::time::Duration::from_millis(50));
        g.to_vec::<f32>().is_err()
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(read(&base), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(other.join().unwrap(), "the other thread sees its own error");
    assert!(dev().sync().is_ok());
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
