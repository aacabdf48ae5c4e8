//! Convolution and pooling layers with PyTorch's options: groups (depthwise, channel
//! multipliers), non-square kernels, strides, paddings and dilations, output padding, the
//! pooling options (ceil mode, dilation, count_include_pad, divisor_override) and adaptive
//! pooling to any size, against CPU loops; init bounds from PyTorch's fans; misuse errors.

use cinder_device::ops::pool::Pool2dParams;
use cinder_nn::{
    AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, Conv2d, Conv2dConfig, ConvTranspose2d,
    ConvTranspose2dConfig, MaxPool2d, Module, VarStore,
};

use crate::common::*;

fn store(seed: u64) -> VarStore {
    VarStore::new(&dev(), seed)
}

type Sh = [usize; 4];

/// Image coordinate of position `o` and tap `k`, if inside `0..size`.
fn tap(o: usize, k: usize, s: usize, p: usize, d: usize, size: usize) -> Option<usize> {
    let v = (o * s + k * d) as isize - p as isize;
    (v >= 0 && (v as usize) < size).then_some(v as usize)
}

/// Grouped convolution on the CPU: `x` `[N, C, H, W]`, `w` `[O, C / g, KH, KW]`.
fn conv_ref(x: &[f32], xs: Sh, w: &[f32], ws: Sh, b: &[f32], cfg: &Conv2dConfig) -> Vec<f32> {
    let (s, p, d, g) = (cfg.stride, cfg.padding, cfg.dilation, cfg.groups);
    let oh = (xs[2] + 2 * p.0 - d.0 * (ws[2] - 1) - 1) / s.0 + 1;
    let ow = (xs[3] + 2 * p.1 - d.1 * (ws[3] - 1) - 1) / s.1 + 1;
    let og = ws[0] / g;
    let mut y = vec![0f32; xs[0] * ws[0] * oh * ow];
    for n in 0..xs[0] {
        for o in 0..ws[0] {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b.get(o).copied().unwrap_or(0.0);
                    for cl in 0..ws[1] {
                        let c = (o / og) * ws[1] + cl;
                        for i in 0..ws[2] {
                            for j in 0..ws[3] {
                                if let (Some(iy), Some(ix)) = (
                                    tap(oy, i, s.0, p.0, d.0, xs[2]),
                                    tap(ox, j, s.1, p.1, d.1, xs[3]),
                                ) {
                                    acc += x[((n * xs[1] + c) * xs[2] + iy) * xs[3] + ix]
                                        * w[((o * ws[1] + cl) * ws[2] + i) * ws[3] + j];
                                }
                            }
                        }
                    }
                    y[((n * ws[0] + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

#[test]
fn grouped_and_non_square_conv2d_layers() {
    // (in, out, kernel, config): depthwise, a channel multiplier, general groups (the
    // batched-matmul path), all with non-square kernels, strides, paddings and dilations
    let cases = [
        (4, 4, (3, 3), Conv2dConfig::default().padding(1).groups(4)),
        (
            3,
            6,
            (3, 2),
            Conv2dConfig::default()
                .stride((2, 1))
                .padding((1, 0))
                .dilation((1, 2))
                .groups(3),
        ),
        (
            4,
            12,
            (2, 3),
            Conv2dConfig::default()
                .stride((1, 2))
                .padding((0, 1))
                .groups(2)
                .bias(false),
        ),
        (
            2,
            5,
            (1, 3),
            Conv2dConfig::default().padding((2, 1)).dilation((3, 1)),
        ),
    ];
    for (i, (cin, cout, k, cfg)) in cases.into_iter().enumerate() {
        let vs = store(20 + i as u64);
        let conv = Conv2d::new(&vs.pp("c"), cin, cout, k, cfg).unwrap();
        let ws = [cout, cin / cfg.groups, k.0, k.1];
        assert_eq!(conv.weight.shape(), ws.to_vec());
        assert_eq!(conv.bias.is_some(), cfg.bias);
        assert_eq!(conv.params.groups, cfg.groups);
        // PyTorch's bound: 1 / sqrt(in / groups * kh * kw)
        let bound = 1.0 / ((ws[1] * k.0 * k.1) as f32).sqrt();
        let w = read(&conv.weight);
        let b = conv.bias.as_ref().map(read).unwrap_or_default();
        assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > bound / 2.0));
        let xs = [2, cin, 7, 6];
        let x = uniform(30 + i as u64, xs.iter().product(), -1.0, 1.0);
        let y = conv.forward(&t(&x, &xs)).unwrap();
        let want = conv_ref(&x, xs, &w, ws, &b, &cfg);
        assert_eq!(y.numel(), want.len());
        assert_close(&read(&y), &want, 1e-4, 1e-4);
    }
}

#[test]
fn grouped_conv_transpose2d_layer() {
    let cfg = ConvTranspose2dConfig::default()
        .stride((2, 1))
        .padding((1, 0))
        .output_padding((1, 0))
        .dilation((1, 2))
        .groups(2);
    let (ci, co, k) = (4, 6, (3, 2));
    let vs = store(40);
    let ct = ConvTranspose2d::new(&vs.pp("ct"), ci, co, k, cfg).unwrap();
    let ws = [ci, co / 2, k.0, k.1];
    assert_eq!(ct.weight.shape(), ws.to_vec());
    assert_eq!(ct.bias.as_ref().unwrap().shape(), vec![co]);
    // PyTorch's fan-in for the transposed layout: weight.size(1) * kh * kw
    let bound = 1.0 / ((ws[1] * k.0 * k.1) as f32).sqrt();
    let w = read(&ct.weight);
    let b = read(ct.bias.as_ref().unwrap());
    assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
    let (n, h, wd) = (2, 3, 4);
    let x = uniform(41, n * ci * h * wd, -1.0, 1.0);
    let y = ct.forward(&t(&x, &[n, ci, h, wd])).unwrap();
    let oh = (h - 1) * 2 + (k.0 - 1) + 1 + 1 - 2;
    let ow = (wd - 1) + 2 * (k.1 - 1) + 1;
    assert_eq!(y.shape(), vec![n, co, oh, ow]);
    let mut want = vec![0f32; n * co * oh * ow];
    for ni in 0..n {
        for o in 0..co {
            for v in want[(ni * co + o) * oh * ow..(ni * co + o + 1) * oh * ow].iter_mut() {
                *v = b[o];
            }
        }
        for c in 0..ci {
            let g = c / (ci / 2);
            for ol in 0..ws[1] {
                let o = g * ws[1] + ol;
                for yy in 0..h {
                    for xx in 0..wd {
                        for i in 0..k.0 {
                            for j in 0..k.1 {
                                if let (Some(oy), Some(ox)) =
                                    (tap(yy, i, 2, 1, 1, oh), tap(xx, j, 1, 0, 2, ow))
                                {
                                    want[((ni * co + o) * oh + oy) * ow + ox] += x
                                        [((ni * ci + c) * h + yy) * wd + xx]
                                        * w[((c * ws[1] + ol) * k.0 + i) * k.1 + j];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_close(&read(&y), &want, 1e-4, 1e-4);
}

#[test]
fn conv_configs_square_and_pair_forms_agree() {
    let a = Conv2dConfig::default().stride(2).padding(1).dilation(3);
    let b = Conv2dConfig {
        stride: (2, 2),
        padding: (1, 1),
        dilation: (3, 3),
        ..Default::default()
    };
    assert_eq!(a, b);
    assert_eq!(Conv2dConfig::default().padding([1, 2]).padding, (1, 2));
    let t1 = ConvTranspose2dConfig::default().stride(2).output_padding(1);
    assert_eq!((t1.stride, t1.output_padding), ((2, 2), (1, 1)));
    let vs = store(50);
    let sq = Conv2d::new(&vs.pp("a"), 2, 3, 3, Default::default()).unwrap();
    let pr = Conv2d::new(&vs.pp("b"), 2, 3, (3, 3), Default::default()).unwrap();
    assert_eq!(sq.weight.shape(), pr.weight.shape());
}

#[test]
fn conv_layer_misuse_is_an_error() {
    let vs = store(51);
    let g = |groups| Conv2dConfig::default().groups(groups);
    // channels not divisible by groups, zero groups, zero kernel or stride
    assert!(Conv2d::new(&vs.pp("a"), 3, 4, 3, g(2)).is_err());
    assert!(Conv2d::new(&vs.pp("b"), 4, 6, 3, g(4)).is_err());
    assert!(Conv2d::new(&vs.pp("c"), 4, 4, 3, g(0)).is_err());
    assert!(Conv2d::new(&vs.pp("d"), 4, 4, (3, 0), g(1)).is_err());
    assert!(Conv2d::new(&vs.pp("e"), 4, 4, 3, Conv2dConfig::default().stride((1, 0))).is_err());
    let tg = |groups| ConvTranspose2dConfig::default().groups(groups);
    assert!(ConvTranspose2d::new(&vs.pp("f"), 4, 3, 3, tg(2)).is_err());
    assert!(ConvTranspose2d::new(&vs.pp("g"), 3, 4, 3, tg(2)).is_err());
    // output padding must be below the stride or the dilation
    let op = ConvTranspose2dConfig::default()
        .stride((2, 1))
        .output_padding((1, 1));
    assert!(ConvTranspose2d::new(&vs.pp("h"), 2, 2, 3, op).is_err());
    // nothing was registered by the failed constructors
    assert_eq!(vs.num_parameters(), 0);
    // a grouped layer given the wrong number of channels
    let conv = Conv2d::new(&vs.pp("ok"), 4, 4, 3, g(2)).unwrap();
    assert!(conv.forward(&t(&[0.0; 75], &[1, 3, 5, 5])).is_err());
}

#[test]
fn pooling_layer_options_match_the_functional_ops() {
    let xs = [2, 3, 7, 9];
    let x = uniform(60, xs.iter().product(), -1.0, 1.0);
    let xt = t(&x, &xs);
    let mp = MaxPool2d::new((3, 2))
        .stride((2, 1))
        .padding((1, 0))
        .dilation((1, 2))
        .ceil_mode(true);
    let want = Pool2dParams {
        kernel: (3, 2),
        stride: (2, 1),
        padding: (1, 0),
        dilation: (1, 2),
        ceil_mode: true,
    };
    assert_eq!(mp.params, want);
    let (y, idx) = mp.forward_with_indices(&xt).unwrap();
    let (y2, idx2) = xt.max_pool2d(&want).unwrap();
    assert_eq!(read(&y), read(&y2));
    assert_eq!(read(&mp.forward(&xt).unwrap()), read(&y2));
    assert_eq!(idx.to_vec::<u32>().unwrap(), idx2.to_vec::<u32>().unwrap());
    // the default stride is the window, for non-square windows too
    assert_eq!(MaxPool2d::new((2, 3)).params.stride, (2, 3));
    assert_eq!(AvgPool2d::new((2, 3)).params.stride, (2, 3));
}

#[test]
fn avg_pool_layer_options_against_cpu() {
    let xs = [1, 2, 5, 7];
    let x = uniform(61, xs.iter().product(), -1.0, 1.0);
    let xt = t(&x, &xs);
    let (k, s, p) = ((3, 2), (2, 3), (1, 1));
    for (cip, div) in [(true, None), (false, None), (false, Some(4))] {
        let ap = AvgPool2d::new(k)
            .stride(s)
            .padding(p)
            .ceil_mode(true)
            .count_include_pad(cip)
            .divisor_override(div);
        let y = ap.forward(&xt).unwrap();
        let (oh, ow) = (y.shape()[2], y.shape()[3]);
        // PyTorch's ceil-mode sizes: 3 and 3
        assert_eq!((oh, ow), (3, 3));
        let mut want = vec![];
        for pl in 0..2 {
            for oy in 0..oh {
                for ox in 0..ow {
                    let hs = (oy * s.0) as isize - p.0 as isize;
                    let ws = (ox * s.1) as isize - p.1 as isize;
                    let he = (hs + k.0 as isize).min((xs[2] + p.0) as isize);
                    let we = (ws + k.1 as isize).min((xs[3] + p.1) as isize);
                    let pool = (he - hs) * (we - ws);
                    let (h0, h1) = (hs.max(0), he.min(xs[2] as isize));
                    let (w0, w1) = (ws.max(0), we.min(xs[3] as isize));
                    let mut sum = 0.0;
                    for iy in h0..h1 {
                        for ix in w0..w1 {
                            sum += x[pl * 35 + iy as usize * 7 + ix as usize];
                        }
                    }
                    let d = match div {
                        Some(d) => d as isize,
                        None if cip => pool,
                        None => (h1 - h0) * (w1 - w0),
                    };
                    want.push(sum / d as f32);
                }
            }
        }
        assert_close(&read(&y), &want, 1e-6, 1e-5);
    }
    assert!(
        AvgPool2d::new(2)
            .divisor_override(Some(0))
            .forward(&xt)
            .is_err()
    );
}

#[test]
fn adaptive_pooling_layers_any_output_size() {
    let xs = [2, 2, 5, 7];
    let mut x = uniform(62, xs.iter().product(), -1.0, 1.0);
    x[3] = f32::NAN;
    let xt = t(&x, &xs);
    let window =
        |i: usize, size: usize, out: usize| ((i * size) / out, ((i + 1) * size).div_ceil(out));
    // windows that do not divide the input, an output larger than it, global pooling
    for (oh, ow) in [(3, 4), (6, 9), (1, 1), (5, 2)] {
        let avg = read(&AdaptiveAvgPool2d::new((oh, ow)).forward(&xt).unwrap());
        let (mx, idx) = AdaptiveMaxPool2d::new((oh, ow))
            .forward_with_indices(&xt)
            .unwrap();
        assert_eq!(mx.shape(), vec![2, 2, oh, ow]);
        let (mx, idx) = (read(&mx), idx.to_vec::<u32>().unwrap());
        let mut o = 0;
        for pl in 0..4 {
            for oy in 0..oh {
                let (h0, h1) = window(oy, 5, oh);
                for ox in 0..ow {
                    let (w0, w1) = window(ox, 7, ow);
                    let cells: Vec<usize> = (h0..h1)
                        .flat_map(|iy| (w0..w1).map(move |ix| iy * 7 + ix))
                        .collect();
                    let vals: Vec<f32> = cells.iter().map(|&c| x[pl * 35 + c]).collect();
                    let mean = vals.iter().sum::<f32>() / vals.len() as f32;
                    if mean.is_nan() {
                        assert!(avg[o].is_nan());
                        // the NaN is the window's maximum, at its index
                        assert!(mx[o].is_nan());
                        assert_eq!(idx[o], 3);
                    } else {
                        assert!((avg[o] - mean).abs() <= 1e-5, "{oh}x{ow} [{o}]");
                        let best = cells
                            .iter()
                            .copied()
                            .fold(None, |b: Option<usize>, c| match b {
                                Some(b) if x[pl * 35 + c] <= x[pl * 35 + b] => Some(b),
                                _ => Some(c),
                            })
                            .unwrap();
                        assert_eq!((mx[o], idx[o]), (x[pl * 35 + best], best as u32));
                    }
                    o += 1;
                }
            }
        }
    }
    // None keeps the input's size along that axis
    let keep = AdaptiveAvgPool2d::with_sizes(None, Some(3))
        .forward(&xt)
        .unwrap();
    assert_eq!(keep.shape(), vec![2, 2, 5, 3]);
    let keep = AdaptiveMaxPool2d::with_sizes(Some(2), None)
        .forward(&xt)
        .unwrap();
    assert_eq!(keep.shape(), vec![2, 2, 2, 7]);
    // a zero output size is an empty tensor (as PyTorch); a bad rank is an error
    assert_eq!(
        AdaptiveAvgPool2d::new((0, 2)).forward(&xt).unwrap().shape(),
        vec![2, 2, 0, 2]
    );
    assert!(
        AdaptiveMaxPool2d::new(2)
            .forward(&t(&[1.0; 4], &[2, 2]))
            .is_err()
    );
}
