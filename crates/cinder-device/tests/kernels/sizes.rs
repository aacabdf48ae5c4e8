//! Checked size arithmetic: sizes that overflow, or pass what the kernels' 32-bit integers
//! hold, are `Err` naming the op (never a panic, never a wrapped size), with messages that
//! say what is wrong.

use super::common::*;
use cinder_device::ops::conv::Conv2dParams;
use cinder_device::ops::pool::Pool2dParams;
use cinder_device::{DType, DeviceTensor, Error};

fn too_large(r: cinder_device::Result<DeviceTensor>, want_op: &str) {
    match r {
        Err(Error::TooLarge { op, .. }) => assert_eq!(op, want_op),
        other => panic!("{want_op}: expected TooLarge, got {other:?}"),
    }
}

#[test]
fn shapes_whose_size_overflows_are_refused() {
    let d = dev();
    let x = DeviceTensor::zeros(&d, &[2, 3]).unwrap();
    too_large(x.reshape(&[(1 << 62) + 1, 4]), "reshape");
    too_large(x.reshape(&[usize::MAX, usize::MAX, 0]), "reshape");
    let err = x.reshape(&[(1 << 62) + 1, 4]).unwrap_err().to_string();
    assert!(err.contains("overflows"), "{err}");
    // Empty, but its stride 2^40 would not fit a kernel parameter.
    let e = DeviceTensor::zeros(&d, &[0, 3]).unwrap();
    too_large(e.reshape(&[0, 1 << 40]), "reshape");
    assert_eq!(e.reshape(&[3, 0, 7]).unwrap().shape(), &[3, 0, 7]);
    too_large(DeviceTensor::zeros(&d, &[1 << 16, 1 << 16]), "full");
    too_large(
        DeviceTensor::from_slice(&d, &[1.0f32], &[usize::MAX, 2]),
        "from_slice",
    );
    too_large(DeviceTensor::eye(&d, 1 << 33, 1 << 33), "eye");
    too_large(DeviceTensor::arange_u32(&d, 1 << 33), "arange_u32");
    too_large(x.pad(&[(usize::MAX, 1)], 0.0), "pad");
    too_large(x.pad(&[(1 << 40, 0)], 0.0), "pad");
    let labels = DeviceTensor::zeros(&d, &[3])
        .unwrap()
        .to_dtype(DType::U32)
        .unwrap();
    too_large(labels.one_hot(usize::MAX), "one_hot");
    too_large(
        x.index_select_backward(1, &labels, usize::MAX),
        "index_select_backward",
    );
    too_large(x.broadcast_to(&[1 << 31, 1 << 31, 2, 3]), "broadcast_to");
    assert!(x.narrow(1, usize::MAX, 2).is_err());
    assert!(DeviceTensor::arange(&d, 0.0, f32::NAN, 1.0).is_err());
    assert!(DeviceTensor::arange(&d, 0.0, f32::INFINITY, 1.0).is_err());
    too_large(DeviceTensor::arange(&d, 0.0, 1e30, 1.0), "arange");
    assert!(DeviceTensor::rand_uniform(&d, &[2], -f32::MAX, f32::MAX, 0, 0).is_err());
}

#[test]
fn conv_and_pool_sizes_say_what_is_wrong() {
    let d = dev();
    let x = DeviceTensor::zeros(&d, &[1, 1, 3, 3]).unwrap();
    let w = DeviceTensor::zeros(&d, &[1, 1, 2, 2]).unwrap();
    let msg = |r: cinder_device::Result<DeviceTensor>| r.unwrap_err().to_string();
    let p = |stride, padding, dilation| Conv2dParams {
        stride,
        padding,
        dilation,
        groups: 1,
    };
    let e = msg(x.conv2d(&w, None, &p((1, 1), (0, 0), (5, 1))));
    assert!(e.contains("larger than the padded input"), "{e}");
    let e = msg(x.conv2d(&w, None, &p((1, 1), (usize::MAX, 0), (1, 1))));
    assert!(e.contains("overflow"), "{e}");
    let e = msg(x.conv2d(&w, None, &p((1, 1), (0, 0), (usize::MAX, 1))));
    assert!(e.contains("overflow"), "{e}");
    // Valid for PyTorch, but past the kernels' exact positions: refused, not wrapped.
    let e = msg(x.conv2d(&w, None, &p((1 << 30, 1), (1 << 28, 0), (1 << 29, 1))));
    assert!(e.contains("2^24"), "{e}");
    let zero = DeviceTensor::zeros(&d, &[1, 1, 0, 2]).unwrap();
    let e = msg(x.conv2d(&zero, None, &Conv2dParams::default()));
    assert!(e.contains("zero size"), "{e}");

    let pool = |kernel, padding, dilation| Pool2dParams {
        kernel,
        stride: (1, 1),
        padding,
        dilation,
        ceil_mode: false,
    };
    let e = msg(x.max_pool2d(&pool((4, 4), (0, 0), (1, 1))).map(|r| r.0));
    assert!(e.contains("larger than the padded input"), "{e}");
    let e = msg(x.max_pool2d(&pool((0, 2), (0, 0), (1, 1))).map(|r| r.0));
    assert!(e.contains("must be positive"), "{e}");
    let e = msg(x
        .max_pool2d(&pool((2, 2), (0, 0), (usize::MAX, 1)))
        .map(|r| r.0));
    assert!(e.contains("32-bit signed positions"), "{e}");
}

#[test]
fn adaptive_pooling_backward_with_no_window_is_zero() {
    let d = dev();
    let g = DeviceTensor::zeros(&d, &[1, 1, 0, 5]).unwrap();
    let gx = DeviceTensor::adaptive_avg_pool2d_backward(&g, &[1, 1, 2, 2]).unwrap();
    assert_eq!(read(&gx), vec![0.0; 4]);
    let idx = g.to_dtype(DType::U32).unwrap();
    let gx = DeviceTensor::adaptive_max_pool2d_backward(&g, &idx, &[1, 1, 2, 2]).unwrap();
    assert_eq!(read(&gx), vec![0.0; 4]);
}
