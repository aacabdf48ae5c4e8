//! Max and average pooling and their adaptive forms, forward and backward, against CPU
//! loops; NaN and infinities in max pooling.

use super::common::*;
use cinder_device::ops::pool::{NO_INDEX, Pool2dParams};
use cinder_device::{DeviceTensor, Error};

/// PyTorch's running maximum: a value replaces the best when greater or NaN (so NaN wins,
/// at its last occurrence); the first of equal maxima stays.
#[derive(Clone, Copy)]
struct Best(Option<(f32, usize)>);

impl Best {
    fn add(&mut self, v: f32, at: usize) {
        let take = match self.0 {
            None => true,
            Some((b, _)) => v.is_nan() || (!b.is_nan() && v > b),
        };
        if take {
            self.0 = Some((v, at));
        }
    }
    fn value(self) -> (f32, u32) {
        self.0
            .map(|(v, i)| (v, i as u32))
            .unwrap_or((f32::NEG_INFINITY, NO_INDEX))
    }
}

/// CPU max pooling: values, indices and the input gradient for `gv`.
fn max_pool_cpu(
    xs: [usize; 4],
    xv: &[f32],
    p: &Pool2dParams,
    (oh, ow): (usize, usize),
    gv: &[f32],
) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let mut want = Vec::new();
    let mut want_idx = Vec::new();
    let mut want_gx = vec![0.0f32; xv.len()];
    for plane in 0..xs[0] * xs[1] {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = Best(None);
                for kh in 0..p.kernel.0 {
                    for kw in 0..p.kernel.1 {
                        let iy =
                            (oy * p.stride.0 + kh * p.dilation.0) as isize - p.padding.0 as isize;
                        let ix =
                            (ox * p.stride.1 + kw * p.dilation.1) as isize - p.padding.1 as isize;
                        if iy < 0 || ix < 0 || iy >= xs[2] as isize || ix >= xs[3] as isize {
                            continue;
                        }
                        let at = iy as usize * xs[3] + ix as usize;
                        best.add(xv[plane * xs[2] * xs[3] + at], at);
                    }
                }
                let (v, i) = best.value();
                want.push(v);
                want_idx.push(i);
                if i != NO_INDEX {
                    want_gx[plane * xs[2] * xs[3] + i as usize] += gv[(plane * oh + oy) * ow + ox];
                }
            }
        }
    }
    (want, want_idx, want_gx)
}

/// Asserts equal values, NaN matching NaN.
#[track_caller]
fn assert_same(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "index {i}: got {g}, want {w}"
        );
    }
}

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
        // a size-1 dimension, a 1-wide window
        ([1, 3, 1, 7], p((1, 3), (1, 2), (0, 1), (1, 1), true)),
        // a 2-tap window dilated by 2 over one cell and its padding: no input cell
        ([1, 1, 1, 1], p((2, 2), (1, 1), (1, 1), (2, 2), false)),
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
        let (want, want_idx, want_gx) = max_pool_cpu(xs, &xv, &p, (oh, ow), &gv);
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
        for (count_pad, divisor) in [
            (true, None),
            (false, None),
            (true, Some(5)),
            (false, Some(1)),
        ] {
            let (x, xv) = rand_tensor(&mut r, &xs);
            let y = x.avg_pool2d(&p, count_pad, divisor).unwrap();
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
                        let div = match divisor {
                            Some(d) => d as isize,
                            None if count_pad => pool,
                            None => (h1 - h0) * (w1 - w0),
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
            let gx = DeviceTensor::avg_pool2d_backward(&g, &xs, &p, count_pad, divisor).unwrap();
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
        x.avg_pool2d(&pad, true, None),
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
        DeviceTensor::avg_pool2d_backward(&g, &[1, 1, 4, 4], &Pool2dParams::square(2), true, None),
        Err(Error::ShapeMismatch {
            op: "avg_pool2d_backward",
            ..
        })
    ));
    // divisor_override = 0, and dilation in average pooling
    assert!(matches!(
        x.avg_pool2d(&Pool2dParams::square(2), true, Some(0)),
        Err(Error::InvalidArgument {
            op: "avg_pool2d",
            ..
        })
    ));
    let dil = Pool2dParams {
        dilation: (2, 1),
        ..Pool2dParams::square(2)
    };
    assert!(x.avg_pool2d(&dil, true, None).is_err());
    // sizes that would overflow are errors
    let huge = Pool2dParams {
        stride: (usize::MAX, 1),
        ..Pool2dParams::square(2)
    };
    assert!(x.max_pool2d(&huge).is_err());
    let huge_d = Pool2dParams {
        dilation: (usize::MAX / 2, 1),
        ..Pool2dParams::square(2)
    };
    assert!(x.max_pool2d(&huge_d).is_err());
    // adaptive: rank, zero input size, dtype, gradient shapes
    assert!(flat.adaptive_avg_pool2d((2, 2)).is_err());
    let empty = DeviceTensor::zeros(&dev(), &[1, 1, 0, 4]).unwrap();
    assert!(matches!(
        empty.adaptive_max_pool2d((1, 1)),
        Err(Error::InvalidArgument {
            op: "adaptive_max_pool2d",
            ..
        })
    ));
    assert!(matches!(
        u.adaptive_avg_pool2d((1, 1)),
        Err(Error::DtypeMismatch {
            op: "adaptive_avg_pool2d",
            ..
        })
    ));
    assert!(DeviceTensor::adaptive_avg_pool2d_backward(&g, &[1, 2, 4, 4]).is_err());
    let idx = DeviceTensor::from_slice(&dev(), &[0u32; 4], &[1, 1, 2, 2]).unwrap();
    assert!(DeviceTensor::adaptive_max_pool2d_backward(&g, &idx, &[1, 1, 4, 4]).is_err());
    // a zero output size gives an empty tensor, as PyTorch
    assert_eq!(
        x.adaptive_avg_pool2d((0, 3)).unwrap().shape(),
        &[1, 1, 0, 3]
    );
}

#[test]
fn max_pool_propagates_nan_and_infinities() {
    // Windows of 2 x 3 (stride 2 x 3) over a 4 x 6 plane: four windows per plane. Plane 0
    // has NaN at the first cell of every window, plane 1 in the middle, plane 2 at the
    // last; plane 3 has two NaN in one window (PyTorch keeps the last), +inf in another,
    // -inf everywhere in a third and an inf next to a NaN in the fourth.
    let (h, w) = (4usize, 6usize);
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let mut v: Vec<f32> = (0..4 * h * w).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
    let cell = |plane: usize, y: usize, x: usize| plane * h * w + y * w + x;
    for (wy, wx) in [(0, 0), (0, 3), (2, 0), (2, 3)] {
        v[cell(0, wy, wx)] = nan;
        v[cell(1, wy, wx + 1)] = nan;
        v[cell(1, wy + 1, wx + 1)] = 9.0;
        v[cell(2, wy + 1, wx + 2)] = nan;
    }
    v[cell(3, 0, 0)] = nan;
    v[cell(3, 1, 2)] = nan;
    v[cell(3, 0, 4)] = inf;
    for y in 2..4 {
        for x in 0..3 {
            v[cell(3, y, x)] = -inf;
        }
    }
    v[cell(3, 2, 3)] = inf;
    v[cell(3, 3, 5)] = nan;
    let xs = [1, 4, h, w];
    let x = tensor(&v, &xs);
    let pools = [
        Pool2dParams {
            kernel: (2, 3),
            stride: (2, 3),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        },
        // overlapping windows with padding: the owner-computes backward
        Pool2dParams {
            kernel: (3, 3),
            stride: (1, 2),
            padding: (1, 1),
            dilation: (1, 1),
            ceil_mode: true,
        },
    ];
    for p in pools {
        let (y, idx) = x.max_pool2d(&p).unwrap();
        let (oh, ow) = (y.shape()[2], y.shape()[3]);
        let gv: Vec<f32> = (0..y.numel()).map(|i| 1.0 + i as f32).collect();
        let g = tensor(&gv, y.shape());
        let (want, want_idx, want_gx) = max_pool_cpu(xs, &v, &p, (oh, ow), &gv);
        assert_same(&read(&y), &want);
        assert_eq!(read_u32(&idx), want_idx);
        let gx = DeviceTensor::max_pool2d_backward(&g, &idx, &xs, &p).unwrap();
        assert_close(&read(&gx), &want_gx, 0.0, 0.0);
    }
    // the first pooling's windows, spelled out
    let (y, idx) = x.max_pool2d(&pools[0]).unwrap();
    let (y, idx) = (read(&y), read_u32(&idx));
    assert!(y[..12].iter().all(|v| v.is_nan()));
    assert_eq!(&idx[..4], &[0, 3, 12, 15]);
    assert_eq!(&idx[4..8], &[1, 4, 13, 16]);
    assert_eq!(&idx[8..12], &[8, 11, 20, 23]);
    assert!(y[12].is_nan());
    assert_eq!(idx[12], 8);
    assert_eq!((y[13], idx[13]), (inf, 4));
    assert_eq!((y[14], idx[14]), (f32::NEG_INFINITY, 12));
    assert!(y[15].is_nan());
    assert_eq!(idx[15], 23);
}

/// PyTorch's adaptive window along one axis: `[floor(i * size / out), ceil((i + 1) * size /
/// out))`.
fn window(i: usize, size: usize, out: usize) -> (usize, usize) {
    ((i * size) / out, ((i + 1) * size).div_ceil(out))
}

#[test]
fn adaptive_pools_match_cpu() {
    let mut r = rng(52);
    // (input, output): windows that do not divide, equal sizes, outputs larger than the
    // input, global pooling, size-1 dimensions
    let cases: [([usize; 4], (usize, usize)); 7] = [
        ([2, 3, 5, 7], (3, 4)),
        ([1, 2, 4, 4], (4, 4)),
        ([1, 2, 3, 5], (5, 8)),
        ([2, 2, 6, 6], (1, 1)),
        ([1, 3, 7, 3], (2, 1)),
        ([1, 1, 1, 5], (3, 2)),
        ([1, 2, 10, 9], (4, 7)),
    ];
    for (xs, (oh, ow)) in cases {
        let (x, mut xv) = rand_tensor(&mut r, &xs);
        // a NaN and an infinity in the first plane (for max pooling)
        xv[1] = f32::NAN;
        let at = xs[3].min(xv.len() - 1);
        xv[at] = f32::INFINITY;
        let xn = tensor(&xv, &xs);
        let avg = x.adaptive_avg_pool2d((oh, ow)).unwrap();
        let (mx, idx) = xn.adaptive_max_pool2d((oh, ow)).unwrap();
        assert_eq!(avg.shape(), &[xs[0], xs[1], oh, ow]);
        let (g, gv) = rand_tensor(&mut r, avg.shape());
        let gx_avg = DeviceTensor::adaptive_avg_pool2d_backward(&g, &xs).unwrap();
        let gx_max = DeviceTensor::adaptive_max_pool2d_backward(&g, &idx, &xs).unwrap();
        let x0 = read(&x);
        let plane = xs[2] * xs[3];
        let (mut want_avg, mut want_max, mut want_idx) = (vec![], vec![], vec![]);
        let mut want_ga = vec![0.0f32; x0.len()];
        let mut want_gm = vec![0.0f32; x0.len()];
        for pl in 0..xs[0] * xs[1] {
            for oy in 0..oh {
                let (h0, h1) = window(oy, xs[2], oh);
                for ox in 0..ow {
                    let (w0, w1) = window(ox, xs[3], ow);
                    let count = ((h1 - h0) * (w1 - w0)) as f32;
                    let o = (pl * oh + oy) * ow + ox;
                    let mut s = 0.0f32;
                    let mut best = Best(None);
                    for iy in h0..h1 {
                        for ix in w0..w1 {
                            let at = iy * xs[3] + ix;
                            s += x0[pl * plane + at];
                            best.add(xv[pl * plane + at], at);
                            want_ga[pl * plane + at] += gv[o] / count;
                        }
                    }
                    want_avg.push(s / count);
                    let (v, i) = best.value();
                    want_max.push(v);
                    want_idx.push(i);
                    want_gm[pl * plane + i as usize] += gv[o];
                }
            }
        }
        assert_close(&read(&avg), &want_avg, 1e-6, 1e-5);
        assert_same(&read(&mx), &want_max);
        assert_eq!(read_u32(&idx), want_idx);
        assert_close(&read(&gx_avg), &want_ga, 1e-6, 1e-5);
        assert_close(&read(&gx_max), &want_gm, 1e-6, 1e-6);
    }
}
