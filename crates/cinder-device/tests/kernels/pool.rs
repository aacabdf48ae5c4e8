//! Max and average pooling, forward and backward, against CPU loops.

use super::common::*;
use cinder_device::ops::pool::Pool2dParams;
use cinder_device::{DeviceTensor, Error};

fn out_size(h: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> usize {
    let avail = h + 2 * p - d * (k - 1) - 1;
    let mut o = if ceil { avail.div_ceil(s) } else { avail / s } + 1;
    if ceil && (o - 1) * s >= h + p {
        o -= 1;
    }
    o
}

fn cases() -> Vec<([usize; 4], Pool2dParams)> {
    let p = |k, s, pd, d, ceil| Pool2dParams {
        kernel: k,
        stride: s,
        padding: pd,
        dilation: d,
        ceil_mode: ceil,
    };
    vec![
        ([2, 3, 8, 8], Pool2dParams::square(2)),
        ([1, 2, 7, 9], p((3, 3), (2, 2), (1, 1), (1, 1), false)),
        ([2, 1, 7, 7], p((3, 2), (2, 1), (1, 0), (1, 1), true)), // overlapping, ceil
        ([1, 2, 10, 9], p((3, 3), (1, 2), (1, 0), (2, 1), false)),
        ([1, 1, 5, 5], p((2, 2), (2, 2), (0, 0), (1, 1), true)),
        // disjoint windows with gaps between them, padding and dilation
        ([2, 2, 9, 11], p((2, 2), (3, 4), (1, 1), (1, 2), false)),
    ]
}

#[test]
fn max_pool_forward_backward_match_cpu() {
    let mut r = rng(50);
    for (xs, p) in cases() {
        let (x, xv) = rand_tensor(&mut r, &xs);
        let (y, idx) = x.max_pool2d(&p).unwrap();
        let oh = out_size(
            xs[2],
            p.kernel.0,
            p.stride.0,
            p.padding.0,
            p.dilation.0,
            p.ceil_mode,
        );
        let ow = out_size(
            xs[3],
            p.kernel.1,
            p.stride.1,
            p.padding.1,
            p.dilation.1,
            p.ceil_mode,
        );
        assert_eq!(y.shape(), &[xs[0], xs[1], oh, ow]);
        let (g, gv) = rand_tensor(&mut r, y.shape());
        let mut want = Vec::new();
        let mut want_idx = Vec::new();
        let mut want_gx = vec![0.0f32; xv.len()];
        for plane in 0..xs[0] * xs[1] {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = (f32::NEG_INFINITY, 0usize);
                    for kh in 0..p.kernel.0 {
                        for kw in 0..p.kernel.1 {
                            let iy = (oy * p.stride.0 + kh * p.dilation.0) as isize
                                - p.padding.0 as isize;
                            let ix = (ox * p.stride.1 + kw * p.dilation.1) as isize
                                - p.padding.1 as isize;
                            if iy < 0 || ix < 0 || iy >= xs[2] as isize || ix >= xs[3] as isize {
                                continue;
                            }
                            let at = iy as usize * xs[3] + ix as usize;
                            if xv[plane * xs[2] * xs[3] + at] > best.0 {
                                best = (xv[plane * xs[2] * xs[3] + at], at);
                            }
                        }
                    }
                    want.push(best.0);
                    want_idx.push(best.1 as u32);
                    want_gx[plane * xs[2] * xs[3] + best.1] += gv[(plane * oh + oy) * ow + ox];
                }
            }
        }
        assert_eq!(read(&y), want);
        assert_eq!(read_u32(&idx), want_idx);
        let gx = DeviceTensor::max_pool2d_backward(&g, &idx, &xs, &p).unwrap();
        assert_close(&read(&gx), &want_gx, 1e-6, 1e-6);
    }
}

#[test]
fn avg_pool_forward_backward_match_cpu() {
    let mut r = rng(51);
    for (xs, p) in cases().into_iter().filter(|(_, p)| p.dilation == (1, 1)) {
        for count_pad in [true, false] {
            let (x, xv) = rand_tensor(&mut r, &xs);
            let y = x.avg_pool2d(&p, count_pad).unwrap();
            let (oh, ow) = (y.shape()[2], y.shape()[3]);
            let (g, gv) = rand_tensor(&mut r, y.shape());
            let mut want = Vec::new();
            let mut want_gx = vec![0.0f32; xv.len()];
            for plane in 0..xs[0] * xs[1] {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let hs = (oy * p.stride.0) as isize - p.padding.0 as isize;
                        let ws = (ox * p.stride.1) as isize - p.padding.1 as isize;
                        let he = (hs + p.kernel.0 as isize).min((xs[2] + p.padding.0) as isize);
                        let we = (ws + p.kernel.1 as isize).min((xs[3] + p.padding.1) as isize);
                        let pool = (he - hs) * (we - ws);
                        let (h0, h1) = (hs.max(0), he.min(xs[2] as isize));
                        let (w0, w1) = (ws.max(0), we.min(xs[3] as isize));
                        let div = if count_pad {
                            pool
                        } else {
                            (h1 - h0) * (w1 - w0)
                        } as f32;
                        let mut s = 0.0;
                        for iy in h0..h1 {
                            for ix in w0..w1 {
                                let at = plane * xs[2] * xs[3] + iy as usize * xs[3] + ix as usize;
                                s += xv[at];
                                want_gx[at] += gv[(plane * oh + oy) * ow + ox] / div;
                            }
                        }
                        want.push(s / div);
                    }
                }
            }
            assert_close(&read(&y), &want, 1e-6, 1e-5);
            let gx = DeviceTensor::avg_pool2d_backward(&g, &xs, &p, count_pad).unwrap();
            assert_close(&read(&gx), &want_gx, 1e-6, 1e-5);
        }
    }
}

#[test]
fn pool_misuse_is_an_error() {
    let x = DeviceTensor::zeros(&dev(), &[1, 1, 4, 4]).unwrap();
    let big = Pool2dParams::square(5);
    assert!(matches!(
        x.max_pool2d(&big),
        Err(Error::InvalidArgument {
            op: "max_pool2d",
            ..
        })
    ));
    let pad = Pool2dParams {
        padding: (2, 2),
        ..Pool2dParams::square(2)
    };
    assert!(matches!(
        x.avg_pool2d(&pad, true),
        Err(Error::InvalidArgument {
            op: "avg_pool2d",
            ..
        })
    ));
    let flat = DeviceTensor::zeros(&dev(), &[4, 4]).unwrap();
    assert!(matches!(
        flat.max_pool2d(&Pool2dParams::square(2)),
        Err(Error::InvalidArgument {
            op: "max_pool2d",
            ..
        })
    ));
    let u = DeviceTensor::from_slice(&dev(), &[0u32; 16], &[1, 1, 4, 4]).unwrap();
    assert!(matches!(
        u.max_pool2d(&Pool2dParams::square(2)),
        Err(Error::DtypeMismatch {
            op: "max_pool2d",
            ..
        })
    ));
    let g = DeviceTensor::zeros(&dev(), &[1, 1, 3, 3]).unwrap();
    assert!(matches!(
        DeviceTensor::avg_pool2d_backward(&g, &[1, 1, 4, 4], &Pool2dParams::square(2), true),
        Err(Error::ShapeMismatch {
            op: "avg_pool2d_backward",
            ..
        })
    ));
}
