//! Optimizers, gradient clipping and LR schedules against plain-Rust references of
//! PyTorch's formulas (the update rules of `torch.optim`'s documentation, the closed forms
//! of `torch.optim.lr_scheduler`).

use cinder_autograd::Tensor;
use cinder_device::{Device, DeviceTensor};
use cinder_nn::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, Optimizer, RmsProp, RmsPropConfig, Sgd,
    SgdConfig, clip_grad_norm, clip_grad_value,
};
use cinder_nn::schedule::{
    CosineAnnealingLr, ExponentialLr, LinearWarmup, LrScheduler, MultiStepLr, PlateauConfig,
    PlateauMode, ReduceLrOnPlateau, StepLr, ThresholdMode,
};

const N: usize = 300;

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

/// Deterministic values in [-1, 1) (a small LCG), different per `seed`.
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn param(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::parameter(DeviceTensor::from_slice(&dev(), v, shape).unwrap()).unwrap()
}

fn set_grad(p: &Tensor, g: &[f32]) {
    let shape = p.shape();
    p.set_grad(Some(Tensor::from_slice(&dev(), g, &shape).unwrap()));
}

fn read(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= atol + rtol * w.abs(),
            "index {i}: got {g}, want {w}"
        );
    }
}

/// Two parameters of different shapes with fixed gradients, stepped three times by `opt`;
/// `reference` applies one step to (param, grad, step) in f64 and keeps its own state.
fn run_three_steps<O: Optimizer>(
    make: impl Fn(Vec<Tensor>) -> O,
    mut reference: impl FnMut(usize, &mut [f64], &[f64], u64),
    seed: u64,
) {
    let shapes: [&[usize]; 2] = [&[12, 20], &[60]];
    let p0: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| values(seed + k as u64, s.iter().product()))
        .collect();
    let grads: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            values(seed + 100 + k as u64, s.iter().product())
                .iter()
                .map(|g| 2.0 * g)
                .collect()
        })
        .collect();
    let params: Vec<Tensor> = shapes.iter().zip(&p0).map(|(s, v)| param(v, s)).collect();
    let mut opt = make(params.clone());
    let mut want: Vec<Vec<f64>> = p0
        .iter()
        .map(|v| v.iter().map(|&x| x as f64).collect())
        .collect();
    for step in 1..=3u64 {
        opt.zero_grad();
        for (p, g) in params.iter().zip(&grads) {
            assert!(p.grad().is_none(), "zero_grad clears the gradient");
            set_grad(p, g);
        }
        opt.step().unwrap();
        for (k, g) in grads.iter().enumerate() {
            let g: Vec<f64> = g.iter().map(|&x| x as f64).collect();
            reference(k, &mut want[k], &g, step);
        }
    }
    for (k, p) in params.iter().enumerate() {
        assert_close(&read(p), &want[k], 2e-5, 2e-4);
        let moved = want[k]
            .iter()
            .zip(&p0[k])
            .any(|(w, &x)| (w - x as f64).abs() > 1e-3);
        assert!(moved, "the reference must move the parameter");
    }
}

#[test]
fn sgd_three_steps_match_pytorch_rule() {
    // (momentum, dampening, weight_decay, nesterov, maximize)
    let cases = [
        (0.0, 0.0, 0.0, false, false),
        (0.0, 0.0, 0.1, false, true),
        (0.9, 0.0, 0.0, false, false),
        (0.9, 0.25, 0.05, false, false),
        (0.9, 0.0, 0.05, true, false),
    ];
    for (ci, &(mom, damp, wd, nesterov, maximize)) in cases.iter().enumerate() {
        let lr = 0.1f32;
        let cfg = SgdConfig {
            lr,
            momentum: mom,
            dampening: damp,
            weight_decay: wd,
            nesterov,
            maximize,
        };
        let mut bufs: Vec<Vec<f64>> = vec![vec![], vec![]];
        let (lr, mom, damp, wd) = (lr as f64, mom as f64, damp as f64, wd as f64);
        run_three_steps(
            |ps| Sgd::new(ps, cfg).unwrap(),
            |k, p, g, step| {
                for i in 0..p.len() {
                    let mut d = if maximize { -g[i] } else { g[i] } + wd * p[i];
                    if mom != 0.0 {
                        if step == 1 {
                            bufs[k].push(d);
                        } else {
                            bufs[k][i] = mom * bufs[k][i] + (1.0 - damp) * d;
                        }
                        d = if nesterov {
                            d + mom * bufs[k][i]
                        } else {
                            bufs[k][i]
                        };
                    }
                    p[i] -= lr * d;
                }
            },
            ci as u64,
        );
    }
}

fn adam_reference(cfg: AdamConfig, decoupled: bool) -> impl FnMut(usize, &mut [f64], &[f64], u64) {
    let mut m: Vec<Vec<f64>> = vec![vec![], vec![]];
    let mut v: Vec<Vec<f64>> = vec![vec![], vec![]];
    let mut vmax: Vec<Vec<f64>> = vec![vec![], vec![]];
    let (lr, b1, b2, eps, wd) = (
        cfg.lr as f64,
        cfg.betas.0 as f64,
        cfg.betas.1 as f64,
        cfg.eps as f64,
        cfg.weight_decay as f64,
    );
    move |k, p, g, step| {
        if step == 1 {
            m[k] = vec![0.0; p.len()];
            v[k] = vec![0.0; p.len()];
            vmax[k] = vec![0.0; p.len()];
        }
        for i in 0..p.len() {
            let mut gi = g[i];
            if decoupled {
                p[i] *= 1.0 - lr * wd;
            } else {
                gi += wd * p[i];
            }
            m[k][i] = b1 * m[k][i] + (1.0 - b1) * gi;
            v[k][i] = b2 * v[k][i] + (1.0 - b2) * gi * gi;
            vmax[k][i] = vmax[k][i].max(v[k][i]);
            let mhat = m[k][i] / (1.0 - b1.powi(step as i32));
            let vv = if cfg.amsgrad { vmax[k][i] } else { v[k][i] };
            let vhat = vv / (1.0 - b2.powi(step as i32));
            p[i] -= lr * mhat / (vhat.sqrt() + eps);
        }
    }
}

#[test]
fn adam_three_steps_match_pytorch_rule() {
    for (ci, (wd, amsgrad)) in [(0.0, false), (0.1, false), (0.05, true)]
        .into_iter()
        .enumerate()
    {
        let cfg = AdamConfig {
            lr: 0.01,
            weight_decay: wd,
            amsgrad,
            ..Default::default()
        };
        run_three_steps(
            |ps| Adam::new(ps, cfg).unwrap(),
            adam_reference(cfg, false),
            10 + ci as u64,
        );
    }
}

#[test]
fn adamw_three_steps_match_decoupled_rule() {
    for (ci, amsgrad) in [false, true].into_iter().enumerate() {
        let cfg = AdamConfig {
            lr: 0.01,
            weight_decay: 0.5,
            amsgrad,
            ..AdamConfig::adamw()
        };
        run_three_steps(
            |ps| AdamW::new(ps, cfg).unwrap(),
            adam_reference(cfg, true),
            20 + ci as u64,
        );
    }
}

#[test]
fn adamw_differs_from_adam_with_l2() {
    // Same weight decay, one step: decoupled decay gives a different parameter, so the
    // two references above test different rules.
    let cfg = AdamConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..Default::default()
    };
    let v = values(7, 8);
    let g = values(8, 8);
    let (a, b) = (param(&v, &[8]), param(&v, &[8]));
    set_grad(&a, &g);
    set_grad(&b, &g);
    Adam::new(vec![a.clone()], cfg).unwrap().step().unwrap();
    Adam::adamw(vec![b.clone()], cfg).unwrap().step().unwrap();
    let (ra, rb) = (read(&a), read(&b));
    assert!(ra.iter().zip(&rb).any(|(x, y)| (x - y).abs() > 1e-3));
}

#[test]
fn rmsprop_three_steps_match_pytorch_rule() {
    // (centered, momentum, weight_decay)
    let cases = [
        (false, 0.0, 0.0),
        (false, 0.9, 0.01),
        (true, 0.0, 0.1),
        (true, 0.5, 0.0),
    ];
    for (ci, &(centered, momentum, wd)) in cases.iter().enumerate() {
        let cfg = RmsPropConfig {
            lr: 0.01,
            centered,
            momentum,
            weight_decay: wd,
            ..Default::default()
        };
        let (lr, a, eps, mom, wd) = (
            cfg.lr as f64,
            cfg.alpha as f64,
            cfg.eps as f64,
            momentum as f64,
            wd as f64,
        );
        let mut sq: Vec<Vec<f64>> = vec![vec![], vec![]];
        let mut ga: Vec<Vec<f64>> = vec![vec![], vec![]];
        let mut buf: Vec<Vec<f64>> = vec![vec![], vec![]];
        run_three_steps(
            |ps| RmsProp::new(ps, cfg).unwrap(),
            |k, p, g, step| {
                if step == 1 {
                    sq[k] = vec![0.0; p.len()];
                    ga[k] = vec![0.0; p.len()];
                    buf[k] = vec![0.0; p.len()];
                }
                for i in 0..p.len() {
                    let gi = g[i] + wd * p[i];
                    sq[k][i] = a * sq[k][i] + (1.0 - a) * gi * gi;
                    let mut avg = sq[k][i];
                    if centered {
                        ga[k][i] = a * ga[k][i] + (1.0 - a) * gi;
                        avg -= ga[k][i] * ga[k][i];
                    }
                    let denom = avg.sqrt() + eps;
                    if mom > 0.0 {
                        buf[k][i] = mom * buf[k][i] + gi / denom;
                        p[i] -= lr * buf[k][i];
                    } else {
                        p[i] -= lr * gi / denom;
                    }
                }
            },
            30 + ci as u64,
        );
    }
}

#[test]
fn adagrad_three_steps_match_pytorch_rule() {
    for (ci, (lr_decay, wd, init)) in [(0.0, 0.0, 0.0), (0.2, 0.1, 0.3)].into_iter().enumerate() {
        let cfg = AdagradConfig {
            lr: 0.1,
            lr_decay,
            weight_decay: wd,
            initial_accumulator_value: init,
            ..Default::default()
        };
        let mut sum: Vec<Vec<f64>> = vec![vec![], vec![]];
        let (lr, lr_decay, wd, eps) = (0.1f64, lr_decay as f64, wd as f64, cfg.eps as f64);
        run_three_steps(
            |ps| Adagrad::new(ps, cfg).unwrap(),
            |k, p, g, step| {
                if step == 1 {
                    sum[k] = vec![init as f64; p.len()];
                }
                let clr = lr / (1.0 + (step - 1) as f64 * lr_decay);
                for i in 0..p.len() {
                    let gi = g[i] + wd * p[i];
                    sum[k][i] += gi * gi;
                    p[i] -= clr * gi / (sum[k][i].sqrt() + eps);
                }
            },
            40 + ci as u64,
        );
    }
}

#[test]
fn step_uses_gradients_from_backward_and_skips_params_without_grad() {
    // loss = sum(w * x): dloss/dw = x. b gets no gradient and must not move.
    let x = values(50, N);
    let w0 = values(51, N);
    let w = param(&w0, &[N]);
    let b = param(&[0.5; 4], &[4]);
    let xt = Tensor::from_slice(&dev(), &x, &[N]).unwrap();
    let loss = w.mul(&xt).unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    let mut opt = Sgd::new(
        vec![w.clone(), b.clone()],
        SgdConfig {
            lr: 0.5,
            momentum: 0.9,
            ..Default::default()
        },
    )
    .unwrap();
    opt.step().unwrap();
    let want: Vec<f64> = w0
        .iter()
        .zip(&x)
        .map(|(&w, &x)| w as f64 - 0.5 * x as f64)
        .collect();
    assert_close(&read(&w), &want, 1e-6, 1e-6);
    assert_eq!(read(&b), vec![0.5; 4]);
    let names: Vec<String> = opt.state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["state.0.momentum_buffer".to_string()]);
}

#[test]
fn state_round_trip_resumes_identically() {
    let cfg = AdamConfig {
        lr: 0.05,
        amsgrad: true,
        ..Default::default()
    };
    let v = values(60, N);
    let g1 = values(61, N);
    let g2 = values(62, N);
    let a = param(&v, &[N]);
    let mut opt_a = Adam::new(vec![a.clone()], cfg).unwrap();
    for g in [&g1, &g2] {
        set_grad(&a, g);
        opt_a.step().unwrap();
    }
    let state = opt_a.state();
    let mut names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "state.0.exp_avg",
            "state.0.exp_avg_sq",
            "state.0.max_exp_avg_sq",
            "state.0.step"
        ]
    );
    let step = state.iter().find(|(n, _)| n == "state.0.step").unwrap();
    assert_eq!(step.1.to_scalar().unwrap(), 2.0);
    assert!(step.1.shape().is_empty());

    // A second optimizer on a copy of the parameter, loaded with that state, takes the
    // same third step bit for bit.
    let b = param(&read(&a), &[N]);
    let mut opt_b = Adam::new(vec![b.clone()], cfg).unwrap();
    opt_b.load_state(&state).unwrap();
    for (p, o) in [(&a, &mut opt_a), (&b, &mut opt_b)] {
        set_grad(p, &g1);
        o.step().unwrap();
    }
    assert_eq!(read(&a), read(&b));

    // Without the state the third step differs (bias correction and moments restart).
    let c = param(&v, &[N]);
    let mut opt_c = Adam::new(vec![c.clone()], cfg).unwrap();
    set_grad(&c, &g1);
    opt_c.step().unwrap();
    assert_ne!(read(&c), read(&b));
}

#[test]
fn load_state_rejects_bad_entries_and_keeps_the_old_state() {
    let d = dev();
    let p = param(&values(70, 6), &[2, 3]);
    let mut opt = RmsProp::new(
        vec![p.clone()],
        RmsPropConfig {
            centered: true,
            ..Default::default()
        },
    )
    .unwrap();
    set_grad(&p, &values(71, 6));
    opt.step().unwrap();
    let good = opt.state();
    let t23 = || DeviceTensor::zeros(&d, &[2, 3]).unwrap();
    let step = || DeviceTensor::scalar(&d, 3.0).unwrap();
    let full = |extra: Vec<(String, DeviceTensor)>| {
        let mut v = vec![
            ("state.0.step".to_string(), step()),
            ("state.0.square_avg".to_string(), t23()),
            ("state.0.grad_avg".to_string(), t23()),
        ];
        v.extend(extra);
        v
    };
    assert!(opt.load_state(&full(vec![])).is_ok());
    let bad_cases: Vec<Vec<(String, DeviceTensor)>> = vec![
        // wrong shape
        vec![
            ("state.0.step".to_string(), step()),
            (
                "state.0.square_avg".to_string(),
                DeviceTensor::zeros(&d, &[6]).unwrap(),
            ),
            ("state.0.grad_avg".to_string(), t23()),
        ],
        // unknown key
        full(vec![("state.0.exp_avg".to_string(), t23())]),
        // parameter index out of range
        full(vec![("state.1.square_avg".to_string(), t23())]),
        // malformed name
        full(vec![("momentum".to_string(), t23())]),
        // missing grad_avg
        vec![
            ("state.0.step".to_string(), step()),
            ("state.0.square_avg".to_string(), t23()),
        ],
        // step that is not a positive integer
        vec![
            (
                "state.0.step".to_string(),
                DeviceTensor::scalar(&d, 1.5).unwrap(),
            ),
            ("state.0.square_avg".to_string(), t23()),
            ("state.0.grad_avg".to_string(), t23()),
        ],
    ];
    opt.load_state(&good).unwrap();
    let before: Vec<(String, Vec<f32>)> = opt
        .state()
        .into_iter()
        .map(|(n, t)| (n, t.to_vec::<f32>().unwrap()))
        .collect();
    for (k, bad) in bad_cases.iter().enumerate() {
        assert!(opt.load_state(bad).is_err(), "bad case {k} accepted");
    }
    let after: Vec<(String, Vec<f32>)> = opt
        .state()
        .into_iter()
        .map(|(n, t)| (n, t.to_vec::<f32>().unwrap()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn bad_configs_and_bad_gradients_are_errors() {
    let p = || vec![param(&[1.0; 3], &[3])];
    assert!(
        Sgd::new(
            p(),
            SgdConfig {
                lr: -0.1,
                ..Default::default()
            }
        )
        .is_err()
    );
    assert!(
        Sgd::new(
            p(),
            SgdConfig {
                nesterov: true,
                ..Default::default()
            }
        )
        .is_err()
    );
    assert!(
        Adam::new(
            p(),
            AdamConfig {
                betas: (1.0, 0.999),
                ..Default::default()
            }
        )
        .is_err()
    );
    assert!(
        RmsProp::new(
            p(),
            RmsPropConfig {
                eps: f32::NAN,
                ..Default::default()
            }
        )
        .is_err()
    );
    assert!(
        Adagrad::new(
            p(),
            AdagradConfig {
                lr_decay: -1.0,
                ..Default::default()
            }
        )
        .is_err()
    );
    let q = param(&[1.0; 3], &[3]);
    assert!(Sgd::new(vec![q.clone(), q.clone()], SgdConfig::default()).is_err());
    // a gradient of the wrong shape, and a negative lr set later: Err, parameter untouched
    let mut opt = Sgd::new(vec![q.clone()], SgdConfig::default()).unwrap();
    q.set_grad(Some(
        Tensor::from_slice(&dev(), &[1.0f32; 4], &[4]).unwrap(),
    ));
    assert!(opt.step().is_err());
    set_grad(&q, &[1.0; 3]);
    opt.set_lr(-1.0);
    assert!(opt.step().is_err());
    assert_eq!(read(&q), vec![1.0; 3]);
}

#[test]
fn clip_grad_norm_scales_by_global_norm() {
    let g1 = values(80, 200);
    let g2 = values(81, 50);
    let total: f64 = g1
        .iter()
        .chain(&g2)
        .map(|&x| (x as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    for max_norm in [0.5f32, 1000.0] {
        let a = param(&[0.0; 200], &[20, 10]);
        let b = param(&[0.0; 50], &[50]);
        let c = param(&[0.0; 2], &[2]); // no gradient: skipped
        set_grad(&a, &g1);
        set_grad(&b, &g2);
        let ps = vec![a.clone(), b.clone(), c.clone()];
        let norm = clip_grad_norm(&ps, max_norm).unwrap();
        assert!(norm.shape().is_empty());
        let got = norm.item().unwrap() as f64;
        assert!((got - total).abs() < 1e-5 * total, "norm {got} vs {total}");
        let coef = (max_norm as f64 / (total + 1e-6)).min(1.0);
        let want = |g: &[f32]| g.iter().map(|&x| x as f64 * coef).collect::<Vec<f64>>();
        assert_close(
            &a.grad().unwrap().to_vec::<f32>().unwrap(),
            &want(&g1),
            1e-7,
            1e-5,
        );
        assert_close(
            &b.grad().unwrap().to_vec::<f32>().unwrap(),
            &want(&g2),
            1e-7,
            1e-5,
        );
        assert!(c.grad().is_none());
        if max_norm < 1.0 {
            let after: f64 = [&a, &b]
                .iter()
                .flat_map(|p| p.grad().unwrap().to_vec::<f32>().unwrap())
                .map(|x| (x as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                (after - max_norm as f64).abs() < 1e-4,
                "clipped norm {after}"
            );
        }
    }
    // no gradients at all: norm 0; a negative max_norm is an error
    let p = param(&[1.0; 3], &[3]);
    assert_eq!(
        clip_grad_norm(std::slice::from_ref(&p), 1.0)
            .unwrap()
            .item()
            .unwrap(),
        0.0
    );
    assert!(clip_grad_norm(&[p], -1.0).is_err());
}

#[test]
fn clip_grad_value_clamps_each_element() {
    let g = values(90, 100);
    let p = param(&[0.0; 100], &[100]);
    set_grad(&p, &g);
    clip_grad_value(std::slice::from_ref(&p), 0.3).unwrap();
    let want: Vec<f64> = g.iter().map(|&x| x.clamp(-0.3, 0.3) as f64).collect();
    assert_close(&p.grad().unwrap().to_vec::<f32>().unwrap(), &want, 0.0, 0.0);
    assert!(
        g.iter().any(|x| x.abs() > 0.3),
        "some values must be clipped"
    );
    assert!(clip_grad_value(&[p], -0.1).is_err());
}

#[track_caller]
fn assert_lrs(s: &mut dyn LrScheduler, want: impl Fn(usize) -> f64, epochs: usize) {
    assert!((s.lr() as f64 - want(0)).abs() <= 1e-7 * want(0).abs().max(1e-3));
    for e in 1..=epochs {
        let got = s.step() as f64;
        let w = want(e);
        assert!(
            (got - w).abs() <= 1e-6 * w.abs().max(1e-6),
            "epoch {e}: got {got}, want {w}"
        );
        assert_eq!(s.epoch(), e);
    }
}

#[test]
fn step_multistep_exponential_lr_sequences() {
    let mut s = StepLr::new(0.1, 3, 0.5).unwrap();
    assert_lrs(&mut s, |e| 0.1 * 0.5f64.powi((e / 3) as i32), 12);
    let ms = [2usize, 5, 9];
    let mut s = MultiStepLr::new(0.2, &ms, 0.1).unwrap();
    assert_lrs(
        &mut s,
        |e| 0.2 * 0.1f64.powi(ms.iter().filter(|&&m| m <= e).count() as i32),
        12,
    );
    let mut s = ExponentialLr::new(0.05, 0.9).unwrap();
    assert_lrs(&mut s, |e| 0.05 * 0.9f64.powi(e as i32), 20);
    assert!(StepLr::new(0.1, 0, 0.5).is_err());
    assert!(MultiStepLr::new(0.1, &[3, 2], 0.5).is_err());
    assert!(ExponentialLr::new(0.1, -1.0).is_err());
}

#[test]
fn cosine_annealing_lr_sequence() {
    let (base, eta_min, t_max) = (0.1f64, 0.001f64, 10usize);
    let mut s = CosineAnnealingLr::new(base as f32, t_max, eta_min as f32).unwrap();
    let f = |e: usize| {
        eta_min
            + (base - eta_min) * (1.0 + (std::f64::consts::PI * e as f64 / t_max as f64).cos())
                / 2.0
    };
    assert_lrs(&mut s, f, 15);
    assert!((s.lr_at(t_max) as f64 - eta_min).abs() < 1e-9);
    assert!(CosineAnnealingLr::new(0.1, 0, 0.0).is_err());
}

#[test]
fn linear_warmup_sequences() {
    // LinearLR(start_factor=0.25, end_factor=1, total_iters=4)
    let mut s = LinearWarmup::new(0.1, 0.25, 4).unwrap();
    assert_lrs(&mut s, |e| 0.1 * (0.25 + 0.75 * e.min(4) as f64 / 4.0), 8);
    // LinearLR with PyTorch's defaults (1/3 -> 1 over 5) and an end factor below 1
    let mut s = LinearWarmup::linear(0.3, 1.0 / 3.0, 0.5, 5).unwrap();
    assert_lrs(
        &mut s,
        |e| 0.3 * (1.0 / 3.0 + (0.5 - 1.0 / 3.0) * e.min(5) as f64 / 5.0),
        8,
    );
    // warmup for 3 epochs into a cosine schedule starting at epoch 3
    let cos = CosineAnnealingLr::new(0.2, 6, 0.0).unwrap();
    let mut s = LinearWarmup::then(Box::new(cos), 0.1, 3).unwrap();
    let f = |e: usize| {
        if e < 3 {
            0.2 * (0.1 + 0.9 * e as f64 / 3.0)
        } else {
            0.2 * (1.0 + (std::f64::consts::PI * (e - 3) as f64 / 6.0).cos()) / 2.0
        }
    };
    assert_lrs(&mut s, f, 10);
    assert!(LinearWarmup::new(0.1, 0.0, 4).is_err());
    assert!(LinearWarmup::new(0.1, 0.5, 0).is_err());
    assert!(LinearWarmup::linear(0.1, 0.5, 1.5, 3).is_err());
}

#[test]
fn schedules_set_the_optimizer_lr() {
    let p = param(&[1.0; 4], &[4]);
    let mut opt = Sgd::new(
        vec![p],
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    let mut s = StepLr::new(opt.lr(), 2, 0.5).unwrap();
    for e in 1..=5 {
        let lr = s.step_optimizer(&mut opt);
        assert_eq!(opt.lr(), lr);
        assert!((lr as f64 - 0.1 * 0.5f64.powi(e / 2)).abs() < 1e-8);
    }
    let mut r = ReduceLrOnPlateau::new(
        opt.lr(),
        PlateauConfig {
            patience: 0,
            ..Default::default()
        },
    )
    .unwrap();
    r.step_optimizer_with(&mut opt, 1.0); // best = 1
    let lr = r.step_optimizer_with(&mut opt, 2.0); // bad epoch 1 > patience 0: reduce
    assert_eq!(opt.lr(), lr);
    assert!((lr as f64 - 0.025 * 0.1).abs() < 1e-9);
}

/// PyTorch's ReduceLROnPlateau.step, written out for the test: returns the rate after each
/// metric.
fn plateau_reference(lr0: f64, c: &PlateauConfig, metrics: &[f64]) -> Vec<f64> {
    let mut best = if c.mode == PlateauMode::Min {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    };
    let (mut bad, mut cool, mut lr) = (0usize, 0usize, lr0);
    let t = c.threshold as f64;
    let mut out = vec![];
    for &m in metrics {
        let better = match (c.mode, c.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => m < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => m < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => m > best * (1.0 + t),
            (PlateauMode::Max, ThresholdMode::Abs) => m > best + t,
        };
        if better {
            best = m;
            bad = 0;
        } else {
            bad += 1;
        }
        if cool > 0 {
            cool -= 1;
            bad = 0;
        }
        if bad > c.patience {
            let new = (lr * c.factor as f64).max(c.min_lr as f64);
            if lr - new > c.eps as f64 {
                lr = new;
            }
            cool = c.cooldown;
            bad = 0;
        }
        out.push(lr);
    }
    out
}

#[test]
fn reduce_lr_on_plateau_sequences() {
    let c = PlateauConfig {
        factor: 0.5,
        patience: 2,
        cooldown: 1,
        min_lr: 0.02,
        ..Default::default()
    };
    // Improves twice, stalls (a 1e-5 relative gain is under the 1e-4 threshold), improves,
    // stalls long enough for several reductions until min_lr holds.
    let metrics = [
        1.0, 0.9, 0.9, 0.89999, 0.9, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8,
        0.8,
    ];
    let mut s = ReduceLrOnPlateau::new(0.1, c).unwrap();
    let got: Vec<f64> = metrics.iter().map(|&m| s.step_with(m) as f64).collect();
    let want = plateau_reference(0.1, &c, &metrics.map(|m| m as f64));
    for (e, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() < 1e-6 * w, "epoch {e}: got {g}, want {w}");
    }
    // The schedule written out by hand: after the improvement to 0.9 (index 1), indices 2,
    // 3 (0.89999 is not 1e-4 better) and 4 are bad; the third exceeds patience 2, so the
    // rate halves at index 4. Index 5 is absorbed by the cooldown, 0.8 improves at 6, and
    // 7, 8, 9 are bad: halve at 9. Then cooldown (10) and three bad (11, 12, 13): 0.0125 is
    // floored to min_lr 0.02 at 13; at 17 the floor leaves nothing to reduce.
    let hand = [
        0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.02, 0.02,
        0.02, 0.02, 0.02,
    ];
    for (e, (g, w)) in got.iter().zip(hand).enumerate() {
        assert!(
            (g - w).abs() < 1e-6 * w,
            "epoch {e}: got {g}, hand-derived {w}"
        );
    }
    // max mode with an absolute threshold
    let c = PlateauConfig {
        mode: PlateauMode::Max,
        threshold_mode: ThresholdMode::Abs,
        threshold: 0.01,
        patience: 1,
        ..Default::default()
    };
    let metrics = [0.5, 0.505, 0.52, 0.525, 0.526, 0.6, 0.6, 0.6];
    let mut s = ReduceLrOnPlateau::new(1.0, c).unwrap();
    let got: Vec<f64> = metrics.iter().map(|&m| s.step_with(m) as f64).collect();
    let want = plateau_reference(1.0, &c, &metrics.map(|m| m as f64));
    for (e, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() < 1e-6 * w, "epoch {e}: got {g}, want {w}");
    }
    assert!(
        want.last().unwrap() < &1.0,
        "the sequence must reduce at least once"
    );
    assert!(
        ReduceLrOnPlateau::new(
            0.1,
            PlateauConfig {
                factor: 1.0,
                ..Default::default()
            }
        )
        .is_err()
    );
}

#[test]
fn one_dispatch_per_parameter_per_step_and_no_readback() {
    // A device of its own, so other tests' dispatches do not count.
    let d = Device::new().unwrap();
    let mk = |v: &[f32], s: &[usize]| {
        Tensor::parameter(DeviceTensor::from_slice(&d, v, s).unwrap()).unwrap()
    };
    let ps = vec![
        mk(&values(1, 240), &[12, 20]),
        mk(&values(2, 60), &[60]),
        mk(&[0.0; 4], &[4]), // no gradient: no dispatch
    ];
    for p in &ps[..2] {
        let g = Tensor::from_slice(&d, &values(3, p.numel()), &p.shape()).unwrap();
        p.set_grad(Some(g));
    }
    let opts: Vec<Box<dyn Optimizer>> = vec![
        Box::new(
            Sgd::new(
                ps.clone(),
                SgdConfig {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 0.1,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            Adam::new(
                ps.clone(),
                AdamConfig {
                    amsgrad: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(AdamW::new(ps.clone(), AdamConfig::adamw()).unwrap()),
        Box::new(
            RmsProp::new(
                ps.clone(),
                RmsPropConfig {
                    centered: true,
                    momentum: 0.5,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(Adagrad::new(ps.clone(), AdagradConfig::default()).unwrap()),
    ];
    for mut opt in opts {
        d.sync().unwrap();
        let before = d.dispatch_stats();
        for _ in 0..3 {
            opt.step().unwrap();
        }
        let after = d.dispatch_stats();
        assert_eq!(
            after.dispatches - before.dispatches,
            6,
            "2 parameters x 3 steps"
        );
        assert_eq!(
            after.submits, before.submits,
            "a step submits and reads nothing"
        );
    }
}

/// Two steps with `opt_a`, then its state loaded into a fresh optimizer on a copy of the
/// parameter: the third step must agree bit for bit, and the state keys must be `keys`.
fn round_trip<O: Optimizer>(make: impl Fn(Vec<Tensor>) -> O, keys: &[&str], seed: u64) {
    let g1 = values(seed, 48);
    let g2 = values(seed + 1, 48);
    let a = param(&values(seed + 2, 48), &[6, 8]);
    let mut opt_a = make(vec![a.clone()]);
    for g in [&g1, &g2] {
        set_grad(&a, g);
        opt_a.step().unwrap();
    }
    let state = opt_a.state();
    let mut names: Vec<String> = state.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    let mut want: Vec<String> = keys.iter().map(|k| format!("state.0.{k}")).collect();
    want.sort();
    assert_eq!(names, want);
    for (n, t) in &state {
        let shape: &[usize] = if n.ends_with(".step") { &[] } else { &[6, 8] };
        assert_eq!(t.shape(), shape, "{n}");
    }
    let b = param(&read(&a), &[6, 8]);
    let mut opt_b = make(vec![b.clone()]);
    opt_b.load_state(&state).unwrap();
    for (p, o) in [(&a, &mut opt_a), (&b, &mut opt_b)] {
        set_grad(p, &g2);
        o.step().unwrap();
    }
    assert_eq!(read(&a), read(&b), "keys {keys:?}");
    // the exported state is a copy: stepping did not change it
    let again = opt_a.state();
    let moved = state
        .iter()
        .zip(&again)
        .any(|((_, x), (_, y))| x.to_vec::<f32>().unwrap() != y.to_vec::<f32>().unwrap());
    assert!(moved, "keys {keys:?}: the state must have moved on");
}

#[test]
fn every_optimizer_state_round_trips_with_pytorch_keys() {
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.1,
        ..Default::default()
    };
    round_trip(|ps| Sgd::new(ps, sgd).unwrap(), &["momentum_buffer"], 100);
    round_trip(
        |ps| Adam::new(ps, AdamConfig::default()).unwrap(),
        &["step", "exp_avg", "exp_avg_sq"],
        110,
    );
    round_trip(
        |ps| AdamW::new(ps, AdamConfig::adamw()).unwrap(),
        &["step", "exp_avg", "exp_avg_sq"],
        120,
    );
    let rms = RmsPropConfig {
        centered: true,
        momentum: 0.5,
        ..Default::default()
    };
    round_trip(
        |ps| RmsProp::new(ps, rms).unwrap(),
        &["step", "square_avg", "grad_avg", "momentum_buffer"],
        130,
    );
    let ada = AdagradConfig {
        lr_decay: 0.1,
        ..Default::default()
    };
    round_trip(|ps| Adagrad::new(ps, ada).unwrap(), &["step", "sum"], 140);
    // SGD without momentum keeps no state
    let p = param(&[1.0; 3], &[3]);
    let mut opt = Sgd::new(vec![p.clone()], SgdConfig::default()).unwrap();
    set_grad(&p, &[1.0; 3]);
    opt.step().unwrap();
    assert!(opt.state().is_empty());
}
