//! Layers against CPU references; default initialization statistics; names.

use cinder_device::Error;
use cinder_nn::init::fans;
use cinder_nn::*;

use crate::common::*;

fn store(seed: u64) -> VarStore {
    VarStore::new(&dev(), seed)
}

#[test]
fn names_are_pytorch_style_and_unique() {
    let vs = store(1);
    let enc = vs.pp("encoder");
    Conv2d::new(&enc.pp("conv1"), 1, 4, 3, Default::default()).unwrap();
    Linear::new(&vs.pp("fc"), 8, 2, true).unwrap();
    BatchNorm::new_2d(&enc.pp("bn1"), 4, Default::default()).unwrap();
    let names: Vec<String> = vs.state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "encoder.conv1.weight",
            "encoder.conv1.bias",
            "fc.weight",
            "fc.bias",
            "encoder.bn1.weight",
            "encoder.bn1.bias",
            "encoder.bn1.running_mean",
            "encoder.bn1.running_var",
            "encoder.bn1.num_batches_tracked",
        ]
    );
    assert_eq!(vs.parameters().len(), 6, "buffers are not parameters");
    assert_eq!(vs.num_parameters(), 4 * 9 + 4 + 16 + 2 + 8);
    assert!(
        Linear::new(&vs.pp("fc"), 8, 2, true).is_err(),
        "a taken name"
    );
}

#[test]
fn linear_forward_and_default_init() {
    let vs = store(2);
    let (i, o) = (100, 300);
    let lin = Linear::new(&vs.pp("l"), i, o, true).unwrap();
    let w = read(&lin.weight);
    let b = read(lin.bias.as_ref().unwrap());
    let bound = 1.0 / (i as f32).sqrt();
    assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
    let (m, s) = stats(&w);
    assert!(m.abs() < 0.01 * bound as f64, "mean {m}");
    // uniform(-a, a) has std a / sqrt(3)
    let want = bound as f64 / 3f64.sqrt();
    assert!((s - want).abs() < 0.02 * want, "std {s}, want {want}");

    let x = uniform(3, 3 * 2 * i, -1.0, 1.0);
    let y = read(&lin.forward(&t(&x, &[3, 2, i])).unwrap());
    let mut want = vec![0f32; 6 * o];
    for r in 0..6 {
        for k in 0..o {
            want[r * o + k] = b[k] + (0..i).map(|j| x[r * i + j] * w[k * i + j]).sum::<f32>();
        }
    }
    assert_close(&y, &want, 1e-4, 1e-4);
    assert!(matches!(
        lin.forward(&t(&[0.0; 4], &[1, 4])),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// out[n, o, y, x] = b[o] + sum x[n, c, y s - p + i d, x s - p + j d] w[o, c, i, j]
#[allow(clippy::too_many_arguments)]
fn conv_ref(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    ws: [usize; 4],
    b: &[f32],
    s: usize,
    p: usize,
    d: usize,
) -> Vec<f32> {
    let [n, c, h, wd] = xs;
    let [o, _, k, _] = ws;
    let oh = (h + 2 * p - d * (k - 1) - 1) / s + 1;
    let ow = (wd + 2 * p - d * (k - 1) - 1) / s + 1;
    let mut out = vec![0f32; n * o * oh * ow];
    for ni in 0..n {
        for oi in 0..o {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = b[oi];
                    for ci in 0..c {
                        for i in 0..k {
                            for j in 0..k {
                                let iy = (y * s + i * d) as isize - p as isize;
                                let ix = (xx * s + j * d) as isize - p as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    acc += x[((ni * c + ci) * h + iy as usize) * wd + ix as usize]
                                        * w[((oi * c + ci) * k + i) * k + j];
                                }
                            }
                        }
                    }
                    out[((ni * o + oi) * oh + y) * ow + xx] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn conv2d_forward_and_default_init() {
    let vs = store(4);
    let cfg = Conv2dConfig {
        stride: (2, 2),
        padding: (1, 1),
        ..Default::default()
    };
    let conv = Conv2d::new(&vs.pp("c"), 3, 4, 3, cfg).unwrap();
    let w = read(&conv.weight);
    let b = read(conv.bias.as_ref().unwrap());
    let bound = 1.0 / (3.0f32 * 9.0).sqrt();
    assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
    let x = uniform(5, 2 * 3 * 7 * 6, -1.0, 1.0);
    let y = conv.forward(&t(&x, &[2, 3, 7, 6])).unwrap();
    assert_eq!(y.shape(), vec![2, 4, 4, 3]);
    let want = conv_ref(&x, [2, 3, 7, 6], &w, [4, 3, 3, 3], &b, 2, 1, 1);
    assert_close(&read(&y), &want, 1e-4, 1e-4);
}

#[test]
fn conv_transpose2d_forward_and_default_init() {
    let vs = store(6);
    let cfg = ConvTranspose2dConfig::default()
        .stride(2)
        .padding(1)
        .output_padding(1);
    let (ci, co, k) = (3, 2, 3);
    let ct = ConvTranspose2d::new(&vs.pp("ct"), ci, co, k, cfg).unwrap();
    assert_eq!(ct.weight.shape(), vec![ci, co, k, k]);
    let w = read(&ct.weight);
    let b = read(ct.bias.as_ref().unwrap());
    // PyTorch's fan-in for the transposed layout is weight.size(1) * k * k
    assert_eq!(fans(&[ci, co, k, k]).unwrap().0, co * k * k);
    let bound = 1.0 / ((co * k * k) as f32).sqrt();
    assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
    let (n, h, wd) = (2, 3, 4);
    let x = uniform(7, n * ci * h * wd, -1.0, 1.0);
    let y = ct.forward(&t(&x, &[n, ci, h, wd])).unwrap();
    let (s, p, op) = (2, 1, 1);
    let oh = (h - 1) * s + (k - 1) + op + 1 - 2 * p;
    let ow = (wd - 1) * s + (k - 1) + op + 1 - 2 * p;
    assert_eq!(y.shape(), vec![n, co, oh, ow]);
    let mut want = vec![0f32; n * co * oh * ow];
    for ni in 0..n {
        for o in 0..co {
            for v in want[(ni * co + o) * oh * ow..(ni * co + o + 1) * oh * ow].iter_mut() {
                *v = b[o];
            }
            for c in 0..ci {
                for yy in 0..h {
                    for xx in 0..wd {
                        for i in 0..k {
                            for j in 0..k {
                                let oy = (yy * s + i) as isize - p as isize;
                                let ox = (xx * s + j) as isize - p as isize;
                                if oy >= 0 && ox >= 0 && (oy as usize) < oh && (ox as usize) < ow {
                                    want[((ni * co + o) * oh + oy as usize) * ow + ox as usize] += x
                                        [((ni * ci + c) * h + yy) * wd + xx]
                                        * w[((c * co + o) * k + i) * k + j];
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
fn pooling_layers() {
    let x = uniform(8, 2 * 3 * 4 * 6, -1.0, 1.0);
    let xt = t(&x, &[2, 3, 4, 6]);
    let plane = |n: usize, c: usize, y: usize, xx: usize| x[((n * 3 + c) * 4 + y) * 6 + xx];
    let maxp = read(&MaxPool2d::new(2).forward(&xt).unwrap());
    let avgp = read(&AvgPool2d::new(2).forward(&xt).unwrap());
    let mut wmax = vec![];
    let mut wavg = vec![];
    for n in 0..2 {
        for c in 0..3 {
            for y in 0..2 {
                for xx in 0..3 {
                    let v = [
                        plane(n, c, 2 * y, 2 * xx),
                        plane(n, c, 2 * y, 2 * xx + 1),
                        plane(n, c, 2 * y + 1, 2 * xx),
                        plane(n, c, 2 * y + 1, 2 * xx + 1),
                    ];
                    wmax.push(v.iter().cloned().fold(f32::MIN, f32::max));
                    wavg.push(v.iter().sum::<f32>() / 4.0);
                }
            }
        }
    }
    assert_eq!(maxp, wmax);
    assert_close(&avgp, &wavg, 1e-6, 1e-6);
    // adaptive to 1x1 is the plane mean; to 2x3 equals the 2x2 average pool (windows that do
    // not divide the input are tested in conv_pool.rs)
    let a1 = read(&AdaptiveAvgPool2d::new(1).forward(&xt).unwrap());
    for (i, v) in a1.iter().enumerate() {
        let mean = x[i * 24..(i + 1) * 24].iter().sum::<f32>() / 24.0;
        assert!((v - mean).abs() < 1e-5);
    }
    let a23 = read(&AdaptiveAvgPool2d::new((2, 3)).forward(&xt).unwrap());
    assert_close(&a23, &wavg, 1e-6, 1e-6);
}

#[test]
fn batchnorm2d_train_updates_running_stats_and_eval_uses_them() {
    let vs = store(9);
    let bn = BatchNorm::new_2d(&vs.pp("bn"), 2, Default::default()).unwrap();
    let (n, c, hw) = (3, 2, 4);
    let x: Vec<f32> = uniform(10, n * c * hw, -1.0, 3.0);
    let xt = t(&x, &[n, c, 2, 2]);
    let y = read(&bn.forward_t(&xt, true).unwrap());
    let m = (n * hw) as f32;
    for ch in 0..c {
        let vals: Vec<f32> = (0..n)
            .flat_map(|ni| (0..hw).map(move |k| (ni, k)))
            .map(|(ni, k)| x[(ni * c + ch) * hw + k])
            .collect();
        let mean = vals.iter().sum::<f32>() / m;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / m;
        for ni in 0..n {
            for k in 0..hw {
                let i = (ni * c + ch) * hw + k;
                let want = (x[i] - mean) / (var + 1e-5).sqrt();
                assert!((y[i] - want).abs() < 1e-4, "train output {i}");
            }
        }
        // running = 0.9 * init + 0.1 * batch statistic (unbiased variance)
        let rm = read(bn.running_mean.as_ref().unwrap())[ch];
        let rv = read(bn.running_var.as_ref().unwrap())[ch];
        assert!((rm - 0.1 * mean).abs() < 1e-5);
        assert!((rv - (0.9 + 0.1 * var * m / (m - 1.0))).abs() < 1e-5);
    }
    // eval: (x - running_mean) / sqrt(running_var + eps)
    let rm = read(bn.running_mean.as_ref().unwrap());
    let rv = read(bn.running_var.as_ref().unwrap());
    let y = read(&bn.forward_t(&xt, false).unwrap());
    for (i, (&v, &xi)) in y.iter().zip(&x).enumerate() {
        let ch = (i / hw) % c;
        assert!((v - (xi - rm[ch]) / (rv[ch] + 1e-5).sqrt()).abs() < 1e-5);
    }
    // eval leaves the running statistics alone
    assert_eq!(read(bn.running_mean.as_ref().unwrap()), rm);
    assert!(
        bn.forward_t(&t(&[1.0; 8], &[2, 4]), true).is_err(),
        "wrong rank"
    );
}

#[test]
fn batchnorm1d_on_features_and_sequences() {
    let vs = store(11);
    let bn = BatchNorm::new_1d(&vs.pp("bn"), 3, Default::default()).unwrap();
    let x = uniform(12, 4 * 3, -2.0, 2.0);
    let y = read(&bn.forward_t(&t(&x, &[4, 3]), true).unwrap());
    for ch in 0..3 {
        let col: Vec<f32> = (0..4).map(|r| y[r * 3 + ch]).collect();
        let (m, s) = stats(&col);
        assert!(
            m.abs() < 1e-5 && (s - 1.0).abs() < 1e-3,
            "channel {ch}: {m} {s}"
        );
    }
    let seq = bn
        .forward_t(&t(&uniform(13, 2 * 3 * 5, -1.0, 1.0), &[2, 3, 5]), true)
        .unwrap();
    assert_eq!(seq.shape(), vec![2, 3, 5]);
    assert!(
        bn.forward_t(&t(&[1.0; 3], &[1, 3]), true).is_err(),
        "one value per channel"
    );
}

#[test]
fn dropout_train_and_eval() {
    let p = 0.3;
    let d = Dropout::new(p, 42).unwrap();
    let n = 20000;
    let x = t(&vec![2.0; n], &[n]);
    assert_eq!(read(&d.forward_t(&x, false).unwrap()), vec![2.0; n]);
    let y = read(&d.forward_t(&x, true).unwrap());
    let zeros = y.iter().filter(|&&v| v == 0.0).count();
    let scaled = 2.0 / (1.0 - p);
    assert!(y.iter().all(|&v| v == 0.0 || (v - scaled).abs() < 1e-6));
    let frac = zeros as f32 / n as f32;
    assert!((frac - p).abs() < 0.015, "dropped fraction {frac}");
    let mean = y.iter().sum::<f32>() / n as f32;
    assert!(
        (mean - 2.0).abs() < 0.05,
        "expected scale kept: mean {mean}"
    );
    // a new mask each call; the same seed gives the same sequence of masks
    let y2 = read(&d.forward_t(&x, true).unwrap());
    assert_ne!(y, y2);
    let again = Dropout::new(p, 42).unwrap();
    assert_eq!(read(&again.forward_t(&x, true).unwrap()), y);
    assert!(Dropout::new(1.5, 0).is_err());
}

#[test]
fn embedding_flatten_activations_sequential() {
    let vs = store(14);
    let emb = Embedding::new(&vs.pp("emb"), 50, 40).unwrap();
    let (m, s) = stats(&read(&emb.weight));
    assert!(
        m.abs() < 0.05 && (s - 1.0).abs() < 0.05,
        "N(0,1) init: {m} {s}"
    );
    let w = read(&emb.weight);
    let ids = tu(&[3, 0, 49, 3], &[2, 2]);
    let y = emb.forward(&ids).unwrap();
    assert_eq!(y.shape(), vec![2, 2, 40]);
    let y = read(&y);
    for (k, &id) in [3usize, 0, 49, 3].iter().enumerate() {
        assert_eq!(&y[k * 40..(k + 1) * 40], &w[id * 40..(id + 1) * 40]);
    }
    assert!(emb.forward(&t(&[1.0], &[1])).is_err(), "f32 ids");

    let x = uniform(15, 12, -2.0, 2.0);
    let xt = t(&x, &[2, 3, 2]);
    type Case = (Box<dyn Module>, fn(f32) -> f32);
    let cases: Vec<Case> = vec![
        (Box::new(Relu), |v| v.max(0.0)),
        (Box::new(LeakyRelu::default()), |v| {
            if v > 0.0 { v } else { 0.01 * v }
        }),
        (Box::new(Elu::default()), |v| {
            if v > 0.0 { v } else { v.exp() - 1.0 }
        }),
        (Box::new(Sigmoid), |v| 1.0 / (1.0 + (-v).exp())),
        (Box::new(Tanh), f32::tanh),
        (Box::new(Softplus(2.0)), |v| {
            (1.0 + (2.0 * v).exp()).ln() / 2.0
        }),
    ];
    for (m, f) in cases {
        let want: Vec<f32> = x.iter().map(|&v| f(v)).collect();
        assert_close(&read(&m.forward(&xt).unwrap()), &want, 1e-5, 1e-5);
    }
    let g = read(&Gelu::new().forward(&xt).unwrap());
    // GELU(1) = 0.8413447, GELU(-1) = -0.1586553 (erf form)
    let g1 = read(&Gelu::default().forward(&t(&[1.0, -1.0], &[2])).unwrap());
    assert_close(&g1, &[0.841_344_7, -0.158_655_3], 1e-5, 1e-5);
    assert_eq!(g.len(), 12);
    assert_eq!(Flatten.forward(&xt).unwrap().shape(), vec![2, 6]);

    let l1 = Linear::new(&vs.pp("s1"), 6, 4, true).unwrap();
    let l2 = Linear::new(&vs.pp("s2"), 4, 2, false).unwrap();
    let manual = l2
        .forward(
            &l1.forward(&Flatten.forward(&xt).unwrap())
                .unwrap()
                .relu()
                .unwrap(),
        )
        .unwrap();
    let seq = Sequential::new().with(Flatten).with(l1).with(Relu).with(l2);
    assert_eq!(seq.len(), 4);
    assert_eq!(read(&seq.forward_t(&xt, false).unwrap()), read(&manual));
    assert_eq!(read(&seq.forward_t(&xt, true).unwrap()), read(&manual));
    // a mode-dependent member follows the mode the sequence is run in
    let drop = Sequential::new().with(Dropout::new(0.5, 3).unwrap());
    let ones = t(&[1.0; 64], &[64]);
    assert_eq!(read(&drop.forward_t(&ones, false).unwrap()), vec![1.0; 64]);
    assert!(read(&drop.forward_t(&ones, true).unwrap()).contains(&0.0));
}

#[test]
fn initializer_statistics() {
    let d = dev();
    let shape = [64, 32, 3, 3];
    let (fi, fo) = (32.0f64 * 9.0, 64.0f64 * 9.0);
    let draw = |init: Init, seed: u64| {
        init.tensor(&d, &shape, seed, 0)
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
    };
    let cases = [
        (
            Init::KaimingNormal {
                negative_slope: 0.0,
            },
            (2.0 / fi).sqrt(),
        ),
        (
            Init::KaimingUniform {
                negative_slope: 0.0,
            },
            (2.0 / fi).sqrt(),
        ),
        (Init::XavierNormal { gain: 1.0 }, (2.0 / (fi + fo)).sqrt()),
        (Init::XavierUniform { gain: 1.0 }, (2.0 / (fi + fo)).sqrt()),
        (
            Init::Normal {
                mean: 0.0,
                std: 0.02,
            },
            0.02,
        ),
    ];
    for (i, (init, want_std)) in cases.iter().enumerate() {
        let v = draw(*init, i as u64);
        let (m, s) = stats(&v);
        assert!(m.abs() < 0.02 * want_std, "{init:?}: mean {m}");
        assert!(
            (s - want_std).abs() < 0.02 * want_std,
            "{init:?}: std {s}, want {want_std}"
        );
    }
    assert!(draw(Init::Constant(0.5), 0).iter().all(|&v| v == 0.5));
    assert!(
        Init::KaimingUniform {
            negative_slope: 0.0
        }
        .tensor(&d, &[], 0, 0)
        .is_err()
    );
}

#[test]
fn batchnorm_and_linear_backward_match_finite_differences() {
    let vs = store(16);
    let bn = BatchNorm::new_2d(&vs.pp("bn"), 2, Default::default()).unwrap();
    let x = t(&uniform(17, 3 * 2 * 2 * 2, -1.0, 2.0), &[3, 2, 2, 2]);
    let w = bn.weight.clone().unwrap();
    // the layer's own weight is used inside; check the input gradient through it
    cinder_autograd::gradcheck(
        std::slice::from_ref(&x),
        |v| bn.forward_t(&v[0], true),
        &Default::default(),
    )
    .unwrap();
    let g = cinder_autograd::grad(
        &[&bn
            .forward_t(&x, true)
            .unwrap()
            .square()
            .unwrap()
            .sum_all()
            .unwrap()],
        &[&w],
        false,
    )
    .unwrap();
    assert_eq!(g[0].shape(), vec![2]);
    let lin = Linear::new(&vs.pp("lin"), 3, 2, true).unwrap();
    let xl = t(&uniform(18, 4 * 3, -1.0, 1.0), &[4, 3]);
    cinder_autograd::gradcheck(&[xl], |v| lin.forward(&v[0]), &Default::default()).unwrap();
}
