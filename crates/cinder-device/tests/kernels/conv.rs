//! conv2d, its backward kernels and conv_transpose2d, dense and grouped (depthwise, channel
//! multipliers, the direct and the batched-matmul paths), against CPU loops.

use super::common::*;
use cinder_device::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use cinder_device::{DeviceTensor, Error};

type Sh = [usize; 4];

/// Image cell touched by output position `o` and tap `k`, if inside.
fn tap(o: usize, k: usize, s: usize, p: usize, d: usize, size: usize) -> Option<usize> {
    let v = (o * s + k * d) as isize - p as isize;
    (v >= 0 && (v as usize) < size).then_some(v as usize)
}

fn out_size(h: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    (h + 2 * p - d * (k - 1) - 1) / s + 1
}

/// Visits every (n, o, c, oy, ox, kh, kw, iy, ix) term of a convolution with `p.groups`
/// groups (weight `[O, C / groups, KH, KW]`), as `(x index, w index, y index)`.
fn each_term(
    xs: Sh,
    ws: Sh,
    p: &Conv2dParams,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    let oh = out_size(xs[2], ws[2], p.stride.0, p.padding.0, p.dilation.0);
    let ow = out_size(xs[3], ws[3], p.stride.1, p.padding.1, p.dilation.1);
    let cg = ws[1];
    let og = ws[0] / p.groups;
    for n in 0..xs[0] {
        for o in 0..ws[0] {
            for c in 0..cg {
                let ci = (o / og) * cg + c;
                for oy in 0..oh {
                    for ox in 0..ow {
                        for kh in 0..ws[2] {
                            for kw in 0..ws[3] {
                                let (Some(iy), Some(ix)) = (
                                    tap(oy, kh, p.stride.0, p.padding.0, p.dilation.0, xs[2]),
                                    tap(ox, kw, p.stride.1, p.padding.1, p.dilation.1, xs[3]),
                                ) else {
                                    continue;
                                };
                                let xi = ((n * xs[1] + ci) * xs[2] + iy) * xs[3] + ix;
                                let wi = ((o * ws[1] + c) * ws[2] + kh) * ws[3] + kw;
                                let yi = ((n * ws[0] + o) * oh + oy) * ow + ox;
                                f(xi, wi, yi, 0, 0);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn cases() -> Vec<(Sh, Sh, Conv2dParams)> {
    let p = |s: (usize, usize), pd: (usize, usize), d: (usize, usize)| Conv2dParams {
        stride: s,
        padding: pd,
        dilation: d,
        groups: 1,
    };
    let gp = |s, pd, d, groups| Conv2dParams {
        groups,
        ..p(s, pd, d)
    };
    vec![
        ([2, 3, 7, 6], [4, 3, 3, 3], p((1, 1), (1, 1), (1, 1))),
        ([1, 2, 9, 8], [3, 2, 3, 2], p((2, 3), (0, 1), (1, 1))),
        ([3, 1, 10, 11], [2, 1, 3, 3], p((2, 2), (2, 1), (2, 2))),
        ([2, 1, 28, 28], [6, 1, 5, 5], p((1, 1), (2, 2), (1, 1))),
        ([1, 5, 4, 4], [1, 5, 1, 1], Conv2dParams::default()),
        // reductions (C*KH*KW) above 32 take im2col + matmul instead of the direct kernel
        ([2, 4, 9, 7], [5, 4, 3, 3], p((2, 1), (1, 1), (1, 2))),
        ([2, 6, 14, 14], [16, 6, 5, 5], Conv2dParams::default()),
        // at most 32 output channels: the implicit-GEMM kernel (channels and positions not
        // multiples of its 8 x 16 block, stride, padding, dilation); above 32: im2col
        ([2, 3, 9, 11], [20, 3, 3, 3], p((2, 1), (1, 2), (1, 2))),
        ([2, 4, 6, 5], [40, 4, 3, 3], p((1, 1), (1, 1), (1, 1))),
        // stride-1 "same" layers (2 * padding = dilation * (K - 1)) of 8 to 32 input
        // channels: the input gradient is the implicit-GEMM convolution of the grid with the
        // flipped weight
        ([2, 9, 8, 7], [6, 9, 3, 3], p((1, 1), (2, 1), (2, 1))),
        ([2, 8, 9, 9], [3, 8, 5, 5], p((1, 1), (2, 2), (1, 1))),
        // grouped, direct kernels ((O/G) * (C/G) <= 16): depthwise, channel multipliers,
        // stride, padding, dilation, a size-1 dimension, widths not multiples of 4
        ([2, 6, 7, 5], [6, 1, 3, 3], gp((1, 1), (1, 1), (1, 1), 6)),
        ([1, 4, 9, 8], [8, 1, 3, 2], gp((2, 1), (1, 0), (1, 2), 4)),
        ([3, 6, 5, 5], [9, 2, 2, 3], gp((1, 2), (1, 0), (1, 2), 3)),
        ([2, 3, 6, 6], [3, 1, 5, 5], gp((1, 1), (2, 2), (1, 1), 3)),
        ([1, 4, 1, 7], [4, 1, 1, 3], gp((1, 1), (0, 1), (1, 1), 4)),
        ([2, 5, 6, 9], [10, 1, 3, 3], gp((3, 2), (1, 1), (2, 1), 5)),
        // grouped, matmul batched over the groups
        ([2, 8, 6, 7], [12, 4, 3, 3], gp((1, 1), (1, 1), (1, 1), 2)),
        ([2, 16, 5, 4], [32, 4, 3, 3], gp((2, 2), (1, 1), (1, 1), 4)),
        ([1, 6, 7, 7], [12, 3, 3, 2], gp((2, 1), (0, 1), (2, 1), 2)),
    ]
}

#[test]
fn conv2d_forward_and_backward_match_cpu() {
    let mut r = rng(40);
    for (xs, ws, p) in cases() {
        let (x, xv) = rand_tensor(&mut r, &xs);
        let (w, wv) = rand_tensor(&mut r, &ws);
        let (b, bv) = rand_tensor(&mut r, &[ws[0]]);
        let y = x.conv2d(&w, Some(&b), &p).unwrap();
        let ys: Sh = y.shape().try_into().unwrap();
        let plane = ys[2] * ys[3];
        let mut want: Vec<f32> = (0..y.numel()).map(|i| bv[(i / plane) % ws[0]]).collect();
        each_term(xs, ws, &p, |xi, wi, yi, _, _| want[yi] += xv[xi] * wv[wi]);
        assert_close(&read(&y), &want, 1e-4, 1e-4);

        let (g, gv) = rand_tensor(&mut r, &ys);
        let gx = DeviceTensor::conv2d_backward_input(&g, &w, &xs, &p).unwrap();
        let gw = DeviceTensor::conv2d_backward_weight(&g, &x, &ws, &p).unwrap();
        let gb = DeviceTensor::conv2d_backward_bias(&g).unwrap();
        let mut want_gx = vec![0.0f32; xv.len()];
        let mut want_gw = vec![0.0f32; wv.len()];
        each_term(xs, ws, &p, |xi, wi, yi, _, _| {
            want_gx[xi] += gv[yi] * wv[wi];
            want_gw[wi] += gv[yi] * xv[xi];
        });
        let want_gb: Vec<f32> = (0..ws[0])
            .map(|o| {
                (0..gv.len())
                    .filter(|i| (i / plane) % ws[0] == o)
                    .map(|i| gv[i])
                    .sum()
            })
            .collect();
        assert_close(&read(&gx), &want_gx, 1e-4, 1e-4);
        assert_close(&read(&gw), &want_gw, 1e-3, 1e-4);
        assert_close(&read(&gb), &want_gb, 1e-4, 1e-4);
    }
}

#[test]
fn conv_transpose2d_matches_cpu_scatter() {
    let mut r = rng(41);
    let tp = |s, pd, op, d| ConvTranspose2dParams {
        stride: s,
        padding: pd,
        output_padding: op,
        dilation: d,
        groups: 1,
    };
    let gtp = |s, pd, op, d, groups| ConvTranspose2dParams {
        groups,
        ..tp(s, pd, op, d)
    };
    for (xs, ws, p) in [
        (
            [2, 3, 4, 5],
            [3, 2, 3, 3],
            tp((2, 2), (1, 1), (1, 1), (1, 1)),
        ),
        (
            [1, 2, 3, 3],
            [2, 4, 4, 4],
            tp((2, 2), (1, 1), (0, 0), (1, 1)),
        ),
        (
            [2, 1, 5, 4],
            [1, 3, 3, 2],
            tp((1, 2), (0, 1), (0, 1), (2, 1)),
        ),
        // grouped: direct kernels (depthwise, multipliers, a size-1 dimension) ...
        (
            [2, 4, 3, 5],
            [4, 1, 3, 3],
            gtp((2, 2), (1, 1), (1, 1), (1, 1), 4),
        ),
        (
            [1, 4, 4, 3],
            [4, 3, 3, 2],
            gtp((1, 2), (0, 1), (0, 0), (2, 1), 2),
        ),
        (
            [1, 2, 1, 4],
            [2, 3, 2, 2],
            gtp((1, 1), (0, 0), (0, 0), (1, 1), 2),
        ),
        // ... and the matmul batched over the groups
        (
            [2, 12, 3, 4],
            [12, 4, 3, 3],
            gtp((2, 2), (1, 1), (1, 0), (1, 1), 2),
        ),
        (
            [1, 8, 2, 3],
            [8, 6, 2, 3],
            gtp((1, 1), (0, 1), (0, 0), (1, 2), 2),
        ),
    ] {
        let (x, xv) = rand_tensor(&mut r, &xs);
        let (w, wv) = rand_tensor(&mut r, &ws);
        let y = x.conv_transpose2d(&w, None, &p).unwrap();
        let oh = (xs[2] - 1) * p.stride.0 + p.dilation.0 * (ws[2] - 1) + p.output_padding.0 + 1
            - 2 * p.padding.0;
        let ow = (xs[3] - 1) * p.stride.1 + p.dilation.1 * (ws[3] - 1) + p.output_padding.1 + 1
            - 2 * p.padding.1;
        let ys = [xs[0], ws[1] * p.groups, oh, ow];
        let cin_g = xs[1] / p.groups;
        assert_eq!(y.shape(), &ys);
        let (g, gv) = rand_tensor(&mut r, &ys);
        let mut want = vec![0.0f32; ys.iter().product()];
        let mut want_gx = vec![0.0f32; xv.len()];
        let mut want_gw = vec![0.0f32; wv.len()];
        for n in 0..xs[0] {
            for ci in 0..xs[1] {
                for iy in 0..xs[2] {
                    for ix in 0..xs[3] {
                        for co in 0..ws[1] {
                            for kh in 0..ws[2] {
                                for kw in 0..ws[3] {
                                    let (Some(oy), Some(ox)) = (
                                        tap(iy, kh, p.stride.0, p.padding.0, p.dilation.0, oh),
                                        tap(ix, kw, p.stride.1, p.padding.1, p.dilation.1, ow),
                                    ) else {
                                        continue;
                                    };
                                    let xi = ((n * xs[1] + ci) * xs[2] + iy) * xs[3] + ix;
                                    let wi = ((ci * ws[1] + co) * ws[2] + kh) * ws[3] + kw;
                                    let cy = (ci / cin_g) * ws[1] + co;
                                    let yi = ((n * ys[1] + cy) * oh + oy) * ow + ox;
                                    want[yi] += xv[xi] * wv[wi];
                                    want_gx[xi] += gv[yi] * wv[wi];
                                    want_gw[wi] += gv[yi] * xv[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_close(&read(&y), &want, 1e-4, 1e-4);
        let gx = DeviceTensor::conv_transpose2d_backward_input(&g, &w, &xs, &p).unwrap();
        let gw = DeviceTensor::conv_transpose2d_backward_weight(&g, &x, &ws, &p).unwrap();
        assert_close(&read(&gx), &want_gx, 1e-4, 1e-4);
        assert_close(&read(&gw), &want_gw, 1e-3, 1e-4);
    }
}

#[test]
fn conv_misuse_is_an_error() {
    let x = DeviceTensor::zeros(&dev(), &[1, 3, 5, 5]).unwrap();
    let w = DeviceTensor::zeros(&dev(), &[2, 4, 3, 3]).unwrap();
    let p = Conv2dParams::default();
    assert!(matches!(
        x.conv2d(&w, None, &p),
        Err(Error::ShapeMismatch { op: "conv2d", .. })
    ));
    let big = DeviceTensor::zeros(&dev(), &[2, 3, 7, 7]).unwrap();
    assert!(matches!(
        x.conv2d(&big, None, &p),
        Err(Error::InvalidArgument { op: "conv2d", .. })
    ));
    let flat = DeviceTensor::zeros(&dev(), &[3, 5, 5]).unwrap();
    assert!(matches!(
        flat.conv2d(&big, None, &p),
        Err(Error::ShapeMismatch { op: "conv2d", .. })
    ));
    // groups: zero, output channels not divisible, input channels not weight[1] * groups
    let w1 = DeviceTensor::zeros(&dev(), &[2, 1, 3, 3]).unwrap();
    for (w, groups, mismatch) in [
        (&w1, 0, false),
        (&w1, 3, false),
        (&wt_like(4, 1), 2, true),
        (&wt_like(6, 1), 2, true),
    ] {
        let gp = Conv2dParams { groups, ..p };
        let r = x.conv2d(w, None, &gp);
        assert!(
            if mismatch {
                matches!(r, Err(Error::ShapeMismatch { op: "conv2d", .. }))
            } else {
                matches!(r, Err(Error::InvalidArgument { op: "conv2d", .. }))
            },
            "weight {:?}, groups {groups}",
            w.shape()
        );
        let g = DeviceTensor::zeros(&dev(), &[1, w.shape()[0], 3, 3]).unwrap();
        assert!(DeviceTensor::conv2d_backward_input(&g, w, x.shape(), &gp).is_err());
        assert!(DeviceTensor::conv2d_backward_weight(&g, &x, w.shape(), &gp).is_err());
    }
    // a depthwise weight with a bias of the wrong size
    let dw = wt_like(3, 1);
    let gp3 = Conv2dParams { groups: 3, ..p };
    let b2 = DeviceTensor::zeros(&dev(), &[2]).unwrap();
    assert!(matches!(
        x.conv2d(&dw, Some(&b2), &gp3),
        Err(Error::ShapeMismatch { op: "conv2d", .. })
    ));
    // huge padding or dilation is an error, not an overflow
    let huge = Conv2dParams {
        padding: (usize::MAX / 2, 0),
        ..p
    };
    assert!(x.conv2d(&w1, None, &huge).is_err());
    let huge_d = Conv2dParams {
        dilation: (usize::MAX / 2, 1),
        ..p
    };
    assert!(x.conv2d(&w1, None, &huge_d).is_err());
    let u = DeviceTensor::from_slice(&dev(), &[0u32; 75], &[1, 3, 5, 5]).unwrap();
    assert!(matches!(
        u.conv2d(&big, None, &p),
        Err(Error::DtypeMismatch { op: "conv2d", .. })
    ));
    let wt = DeviceTensor::zeros(&dev(), &[3, 2, 3, 3]).unwrap();
    let bad = ConvTranspose2dParams {
        output_padding: (1, 1),
        ..Default::default()
    };
    assert!(matches!(
        x.conv_transpose2d(&wt, None, &bad),
        Err(Error::InvalidArgument {
            op: "conv_transpose2d",
            ..
        })
    ));
    // transposed, grouped: C_in = 3 not divisible by 2; zero groups; a bias of C_out / groups
    for groups in [0, 2] {
        let gp = ConvTranspose2dParams {
            groups,
            ..Default::default()
        };
        assert!(matches!(
            x.conv_transpose2d(&wt, None, &gp),
            Err(Error::InvalidArgument {
                op: "conv_transpose2d",
                ..
            })
        ));
    }
    let x4 = DeviceTensor::zeros(&dev(), &[1, 4, 5, 5]).unwrap();
    let wt4 = DeviceTensor::zeros(&dev(), &[4, 2, 3, 3]).unwrap();
    let gp2 = ConvTranspose2dParams {
        groups: 2,
        ..Default::default()
    };
    assert_eq!(
        x4.conv_transpose2d(&wt4, None, &gp2).unwrap().shape(),
        &[1, 4, 7, 7]
    );
    assert!(matches!(
        x4.conv_transpose2d(&wt4, Some(&b2), &gp2),
        Err(Error::ShapeMismatch {
            op: "conv_transpose2d",
            ..
        })
    ));
}

fn wt_like(o: usize, c: usize) -> DeviceTensor {
    DeviceTensor::zeros(&dev(), &[o, c, 3, 3]).unwrap()
}

#[test]
fn columns_past_the_binding_limit_are_chunked_over_the_batch() {
    let d = dev();
    // Columns of 64 x (64*3*3) x (32*32) f32 are 151 MB, over lavapipe's 128 MiB binding
    // limit: the batch is split, and every image must come out as if convolved alone. Dense,
    // and grouped (the batch-inner columns of the grouped matmul are chunked the same way).
    let limit = d.max_binding_bytes() as usize;
    let n = (limit / (64 * 9 * 1024 * 4)) + 8;
    let x = DeviceTensor::rand_uniform(&d, &[n, 64, 32, 32], -1.0, 1.0, 1, 0).unwrap();
    for (ws, groups) in [([4, 64, 3, 3], 1), ([4, 32, 3, 3], 2)] {
        let w = DeviceTensor::rand_uniform(&d, &ws, -1.0, 1.0, 2, 0).unwrap();
        let p = Conv2dParams {
            padding: (1, 1),
            groups,
            ..Default::default()
        };
        let y = x.conv2d(&w, None, &p).unwrap();
        let g = DeviceTensor::rand_uniform(&d, y.shape(), -1.0, 1.0, 3, 0).unwrap();
        let gx = DeviceTensor::conv2d_backward_input(&g, &w, x.shape(), &p).unwrap();
        let gw = DeviceTensor::conv2d_backward_weight(&g, &x, w.shape(), &p).unwrap();
        let half = n / 2;
        let mut gw_parts = Vec::new();
        for (start, len) in [(0, half), (half, n - half)] {
            let xs = x.narrow(0, start, len).unwrap();
            let gs = g.narrow(0, start, len).unwrap();
            assert_close(
                &read(&y.narrow(0, start, len).unwrap()),
                &read(&xs.conv2d(&w, None, &p).unwrap()),
                1e-5,
                1e-5,
            );
            let gxs = DeviceTensor::conv2d_backward_input(&gs, &w, xs.shape(), &p).unwrap();
            assert_close(
                &read(&gx.narrow(0, start, len).unwrap()),
                &read(&gxs),
                1e-5,
                1e-5,
            );
            gw_parts.push(read(
                &DeviceTensor::conv2d_backward_weight(&gs, &xs, w.shape(), &p).unwrap(),
            ));
        }
        let want: Vec<f32> = gw_parts[0]
            .iter()
            .zip(&gw_parts[1])
            .map(|(a, b)| a + b)
            .collect();
        assert_close(&read(&gw), &want, 1e-2, 1e-4);
    }
}

#[test]
fn weight_gradients_of_wide_layers_stay_under_the_binding_limit() {
    // VGG's last blocks: 512 -> 512 channels, 3x3, on 2x2 maps. One image's [O, C*9]
    // partial is 9.4 MB, so 16 images of per-image partials (151 MB) would pass lavapipe's
    // 128 MiB binding; the batch is folded into the product instead.
    let mut r = rng(41);
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    let (xs, ws): (Sh, Sh) = ([16, 512, 2, 2], [512, 512, 3, 3]);
    let (x, xv) = rand_tensor(&mut r, &xs);
    let (g, gv) = rand_tensor(&mut r, &[16, 512, 2, 2]);
    let gw = read(&DeviceTensor::conv2d_backward_weight(&g, &x, &ws, &p).unwrap());
    let mut want = vec![0.0f32; 512 * 512 * 9];
    each_term(xs, ws, &p, |xi, wi, yi, _, _| want[wi] += gv[yi] * xv[xi]);
    assert_close(&gw, &want, 1e-3, 1e-4);
    // and the transposed convolution's weight gradient, same sizes
    let tp = ConvTranspose2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    let gwt = DeviceTensor::conv_transpose2d_backward_weight(&g, &x, &ws, &tp).unwrap();
    assert_eq!(gwt.shape(), &ws);
}

#[test]
fn grouped_weight_gradients_fold_the_batch_when_large() {
    // N * O * (C/G * 9) = 16 * 256 * 1152 passes the per-image limit (2^22): the batch is
    // folded into each group's product ([G, O/G, N*L] x [G, N*L, C/G*9]).
    let mut r = rng(42);
    let p = Conv2dParams {
        padding: (1, 1),
        groups: 2,
        ..Default::default()
    };
    let (xs, ws): (Sh, Sh) = ([16, 256, 2, 2], [256, 128, 3, 3]);
    let (x, xv) = rand_tensor(&mut r, &xs);
    let (g, gv) = rand_tensor(&mut r, &[16, 256, 2, 2]);
    let gw = read(&DeviceTensor::conv2d_backward_weight(&g, &x, &ws, &p).unwrap());
    let mut want = vec![0.0f32; ws.iter().product()];
    each_term(xs, ws, &p, |xi, wi, yi, _, _| want[wi] += gv[yi] * xv[xi]);
    assert_close(&gw, &want, 1e-3, 1e-4);
}
