//! Fused optimizer kernels against plain-Rust references of PyTorch's update rules, over
//! three steps with a new random gradient each step; parameters and state are compared.

use super::common::*;
use cinder_device::{AdagradStep, AdamStep, DType, DeviceTensor, Error, RmspropStep, SgdStep};

const N: usize = 1037; // not a multiple of the workgroup size

fn uninit() -> DeviceTensor {
    DeviceTensor::uninit(&dev(), &[N], DType::F32).unwrap()
}

/// Three gradients and the initial parameter.
fn data(seed: u64) -> (Vec<f32>, Vec<Vec<f32>>) {
    let mut r = rng(seed);
    let p = uniform(&mut r, N, -1.0, 1.0);
    let gs = (0..3).map(|_| uniform(&mut r, N, -2.0, 2.0)).collect();
    (p, gs)
}

#[test]
fn sgd_matches_reference() {
    // (momentum, dampening, weight_decay, nesterov, maximize)
    let cases = [
        (0.0, 0.0, 0.0, false, false),
        (0.0, 0.0, 0.1, false, true),
        (0.9, 0.0, 0.0, false, false),
        (0.9, 0.3, 0.01, false, false),
        (0.8, 0.0, 0.05, true, false),
    ];
    for (ci, &(mom, damp, wd, nesterov, maximize)) in cases.iter().enumerate() {
        let (p0, gs) = data(10 + ci as u64);
        let param = tensor(&p0, &[N]);
        let buf = (mom != 0.0).then(uninit);
        let mut p = p0.clone();
        let mut b = vec![0.0f32; N];
        let lr = 0.05;
        for (t, g) in gs.iter().enumerate() {
            let step = t as u64 + 1;
            let h = SgdStep {
                lr,
                momentum: mom,
                dampening: damp,
                weight_decay: wd,
                nesterov,
                maximize,
                step,
            };
            param.sgd_step_(&tensor(g, &[N]), buf.as_ref(), &h).unwrap();
            for i in 0..N {
                let mut gi = if maximize { -g[i] } else { g[i] } + wd * p[i];
                if mom != 0.0 {
                    b[i] = if step == 1 {
                        gi
                    } else {
                        mom * b[i] + (1.0 - damp) * gi
                    };
                    gi = if nesterov { gi + mom * b[i] } else { b[i] };
                }
                p[i] -= lr * gi;
            }
        }
        assert_close(&read(&param), &p, 1e-6, 1e-5);
        if let Some(buf) = &buf {
            assert_close(&read(buf), &b, 1e-6, 1e-5);
        }
        assert_ne!(p, p0, "case {ci}: the reference must move");
    }
}

#[test]
fn adam_and_adamw_match_reference() {
    // (weight_decay, decoupled, amsgrad)
    let cases = [
        (0.0, false, false),
        (0.1, false, false),
        (0.1, true, false),
        (0.01, false, true),
        (0.05, true, true),
    ];
    for (ci, &(wd, decoupled, amsgrad)) in cases.iter().enumerate() {
        let (p0, gs) = data(20 + ci as u64);
        let param = tensor(&p0, &[N]);
        let (m_t, v_t) = (uninit(), uninit());
        let vmax_t = amsgrad.then(uninit);
        let (lr, b1, b2, eps) = (0.01f32, 0.9f32, 0.999f32, 1e-8f32);
        let mut p: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
        let mut m = vec![0.0f64; N];
        let mut v = vec![0.0f64; N];
        let mut vmax = vec![0.0f64; N];
        for (t, g) in gs.iter().enumerate() {
            let step = t as u64 + 1;
            let h = AdamStep {
                lr,
                beta1: b1,
                beta2: b2,
                eps,
                weight_decay: wd,
                decoupled,
                maximize: false,
                step,
            };
            param
                .adam_step_(&tensor(g, &[N]), &m_t, &v_t, vmax_t.as_ref(), &h)
                .unwrap();
            let (lr, b1, b2, eps, wd) = (lr as f64, b1 as f64, b2 as f64, eps as f64, wd as f64);
            for i in 0..N {
                let mut gi = g[i] as f64;
                if decoupled {
                    p[i] *= 1.0 - lr * wd;
                } else {
                    gi += wd * p[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                vmax[i] = vmax[i].max(v[i]);
                let mhat = m[i] / (1.0 - b1.powi(step as i32));
                let vv = if amsgrad { vmax[i] } else { v[i] };
                let vhat = vv / (1.0 - b2.powi(step as i32));
                p[i] -= lr * mhat / (vhat.sqrt() + eps);
            }
        }
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        assert_close(&read(&param), &f(&p), 1e-5, 1e-4);
        assert_close(&read(&m_t), &f(&m), 1e-6, 1e-4);
        assert_close(&read(&v_t), &f(&v), 1e-7, 1e-4);
        if let Some(t) = &vmax_t {
            assert_close(&read(t), &f(&vmax), 1e-7, 1e-4);
        }
    }
}

#[test]
fn rmsprop_matches_reference() {
    // (centered, momentum, weight_decay)
    let cases = [
        (false, 0.0, 0.0),
        (false, 0.9, 0.0),
        (true, 0.0, 0.1),
        (true, 0.5, 0.01),
    ];
    for (ci, &(centered, mom, wd)) in cases.iter().enumerate() {
        let (p0, gs) = data(30 + ci as u64);
        let param = tensor(&p0, &[N]);
        let sq_t = uninit();
        let ga_t = centered.then(uninit);
        let buf_t = (mom > 0.0).then(uninit);
        let (lr, alpha, eps) = (0.01f32, 0.99f32, 1e-8f32);
        let mut p: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
        let (mut sq, mut ga, mut buf) = (vec![0.0f64; N], vec![0.0f64; N], vec![0.0f64; N]);
        for (t, g) in gs.iter().enumerate() {
            let h = RmspropStep {
                lr,
                alpha,
                eps,
                weight_decay: wd,
                momentum: mom,
                maximize: false,
                step: t as u64 + 1,
            };
            param
                .rmsprop_step_(&tensor(g, &[N]), &sq_t, ga_t.as_ref(), buf_t.as_ref(), &h)
                .unwrap();
            let (lr, a, eps, mom, wd) =
                (lr as f64, alpha as f64, eps as f64, mom as f64, wd as f64);
            for i in 0..N {
                let gi = g[i] as f64 + wd * p[i];
                sq[i] = a * sq[i] + (1.0 - a) * gi * gi;
                let denom = if centered {
                    ga[i] = a * ga[i] + (1.0 - a) * gi;
                    (sq[i] - ga[i] * ga[i]).sqrt() + eps
                } else {
                    sq[i].sqrt() + eps
                };
                if mom > 0.0 {
                    buf[i] = mom * buf[i] + gi / denom;
                    p[i] -= lr * buf[i];
                } else {
                    p[i] -= lr * gi / denom;
                }
            }
        }
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        // Centered RMSprop divides by sqrt(v - ga^2), which loses relative precision in f32.
        assert_close(&read(&param), &f(&p), 2e-5, 2e-4);
        assert_close(&read(&sq_t), &f(&sq), 1e-6, 1e-4);
        if let Some(t) = &ga_t {
            assert_close(&read(t), &f(&ga), 1e-6, 1e-4);
        }
        if let Some(t) = &buf_t {
            assert_close(&read(t), &f(&buf), 1e-4, 1e-4);
        }
    }
}

#[test]
fn adagrad_matches_reference() {
    // (lr_decay, weight_decay, initial_accumulator_value)
    let cases = [(0.0, 0.0, 0.0), (0.1, 0.05, 0.5)];
    for (ci, &(lr_decay, wd, init)) in cases.iter().enumerate() {
        let (p0, gs) = data(40 + ci as u64);
        let param = tensor(&p0, &[N]);
        let sum_t = uninit();
        let (lr, eps) = (0.1f32, 1e-10f32);
        let mut p: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
        let mut sum = vec![init as f64; N];
        for (t, g) in gs.iter().enumerate() {
            let step = t as u64 + 1;
            let h = AdagradStep {
                lr,
                lr_decay,
                weight_decay: wd,
                initial_accumulator_value: init,
                eps,
                maximize: false,
                step,
            };
            param.adagrad_step_(&tensor(g, &[N]), &sum_t, &h).unwrap();
            let clr = lr as f64 / (1.0 + (step - 1) as f64 * lr_decay as f64);
            for i in 0..N {
                let gi = g[i] as f64 + wd as f64 * p[i];
                sum[i] += gi * gi;
                p[i] -= clr * gi / (sum[i].sqrt() + eps as f64);
            }
        }
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        assert_close(&read(&param), &f(&p), 1e-5, 1e-4);
        assert_close(&read(&sum_t), &f(&sum), 1e-5, 1e-5);
    }
}

#[test]
fn optimizer_kernels_reject_misuse() {
    let p = tensor(&[1.0; 4], &[4]);
    let g = tensor(&[1.0; 4], &[4]);
    let wrong = tensor(&[1.0; 3], &[3]);
    let h = SgdStep {
        lr: 0.1,
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        maximize: false,
        step: 1,
    };
    assert!(matches!(
        p.sgd_step_(&wrong, None, &h),
        Err(Error::ShapeMismatch { .. })
    ));
    // the parameter passed as its own gradient: aliasing is refused
    assert!(matches!(
        p.sgd_step_(&p.clone(), None, &h),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(p.sgd_step_(&g, None, &SgdStep { step: 0, ..h }).is_err());
    assert!(p.sgd_step_(&g, None, &SgdStep { lr: -1.0, ..h }).is_err());
    assert!(
        p.sgd_step_(&g, None, &SgdStep { lr: f32::NAN, ..h })
            .is_err()
    );
    assert!(
        p.sgd_step_(
            &g,
            None,
            &SgdStep {
                nesterov: true,
                ..h
            }
        )
        .is_err()
    );
    // momentum without a buffer
    assert!(
        p.sgd_step_(&g, None, &SgdStep { momentum: 0.9, ..h })
            .is_err()
    );
    let idx = DeviceTensor::from_slice(&dev(), &[1u32; 4], &[4]).unwrap();
    assert!(matches!(
        p.sgd_step_(&idx, None, &h),
        Err(Error::DtypeMismatch { .. })
    ));
    let a = AdamStep {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        maximize: false,
        step: 1,
    };
    let (m, v) = (tensor(&[0.0; 4], &[4]), tensor(&[0.0; 4], &[4]));
    assert!(p.adam_step_(&g, &m, &m.clone(), None, &a).is_err());
    assert!(
        p.adam_step_(&g, &m, &v, None, &AdamStep { beta1: 1.0, ..a })
            .is_err()
    );
    assert!(p.adam_step_(&g, &m, &wrong, None, &a).is_err());
    // nothing above touched the parameter
    assert_eq!(read(&p), vec![1.0; 4]);
}

#[test]
fn zero_weight_decay_adds_no_term_for_infinite_parameters() {
    // PyTorch skips `grad + wd * p` when wd is 0, so an infinite parameter stays infinite
    // instead of becoming NaN through 0 * inf.
    let inf = f32::INFINITY;
    let p = tensor(&[inf, -inf, 1.0], &[3]);
    let g = tensor(&[1.0, 1.0, 1.0], &[3]);
    let h = SgdStep {
        lr: 0.1,
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        maximize: false,
        step: 1,
    };
    p.sgd_step_(&g, None, &h).unwrap();
    assert_eq!(read(&p), vec![inf, -inf, 0.9]);
    let (m, v) = (uninit3(), uninit3());
    let a = AdamStep {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        maximize: false,
        step: 1,
    };
    p.adam_step_(&g, &m, &v, None, &a).unwrap();
    assert_eq!(read(&p)[..2], [inf, -inf]);
    let sq = uninit3();
    let r = RmspropStep {
        lr: 0.01,
        alpha: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
        momentum: 0.0,
        maximize: false,
        step: 1,
    };
    p.rmsprop_step_(&g, &sq, None, None, &r).unwrap();
    let s = uninit3();
    let ada = AdagradStep {
        lr: 0.01,
        lr_decay: 0.0,
        weight_decay: 0.0,
        initial_accumulator_value: 0.0,
        eps: 1e-10,
        maximize: false,
        step: 1,
    };
    p.adagrad_step_(&g, &s, &ada).unwrap();
    assert_eq!(read(&p)[..2], [inf, -inf]);
}

fn uninit3() -> DeviceTensor {
    DeviceTensor::uninit(&dev(), &[3], DType::F32).unwrap()
}

fn scalar(v: f32) -> DeviceTensor {
    DeviceTensor::scalar(&dev(), v).unwrap()
}

#[test]
fn clip_norm_coef_matches_pytorch_formula() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    // (acc, p, max_norm) -> (norm, coef)
    let cases: [(f32, f32, f32, f32, f32); 9] = [
        (25.0, 2.0, 1.0, 5.0, 1.0 / (5.0 + 1e-6)),
        (25.0, 2.0, 100.0, 5.0, 1.0),
        (7.0, 1.0, 2.0, 7.0, 2.0 / (7.0 + 1e-6)),
        (27.0, 3.0, 1.0, 3.0, 1.0 / (3.0 + 1e-6)),
        (0.0, 3.0, 1.0, 0.0, 1.0),
        (4.0, inf, 2.0, 4.0, 2.0 / (4.0 + 1e-6)),
        (inf, inf, 2.0, inf, 0.0),
        (nan, 2.0, 1.0, nan, nan), // a NaN in some gradient
        (inf, 2.0, 1.0, inf, 0.0),
    ];
    for (acc, p, max_norm, norm, coef) in cases {
        let (n, c) = DeviceTensor::clip_norm_coef(&scalar(acc), p, max_norm).unwrap();
        let (n, c) = (n.to_scalar().unwrap(), c.to_scalar().unwrap());
        let same = |a: f32, b: f32| {
            a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6 * b.abs()
        };
        assert!(same(n, norm), "{acc} p {p}: norm {n}, want {norm}");
        assert!(same(c, coef), "{acc} p {p}: coef {c}, want {coef}");
    }
    let s = scalar(1.0);
    for p in [0.0, -2.0, nan, f32::NEG_INFINITY] {
        assert!(DeviceTensor::clip_norm_coef(&s, p, 1.0).is_err(), "p {p}");
    }
    assert!(DeviceTensor::clip_norm_coef(&s, 2.0, -1.0).is_err());
    assert!(DeviceTensor::clip_norm_coef(&tensor(&[1.0, 2.0], &[2]), 2.0, 1.0).is_err());
}
