//! Optimizers, gradient clipping and LR schedules against plain-Rust references of
//! PyTorch's formulas (the update rules of `torch.optim`'s documentation, the closed forms
//! of `torch.optim.lr_scheduler`).

use cinder_autograd::Tensor;
use cinder_device::{DType, Device};
use cinder_nn::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, ParamGroup, RmsProp,
    RmsPropConfig, Sgd, SgdConfig, clip_grad_norm, clip_grad_norm_with, clip_grad_value,
    weight_decay_groups,
};
use cinder_nn::schedule::{
    Anneal, CosineAnnealingLr, CosineAnnealingWarmRestarts, ExponentialLr, LinearWarmup,
    LrScheduler, MultiStepLr, OneCycleConfig, OneCycleLr, PlateauConfig, PlateauMode, PolynomialLr,
    ReduceLrOnPlateau, StepLr, ThresholdMode,
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
    Tensor::from_slice(&dev(), v, shape)
        .unwrap()
        .requires_grad_(true)
        .unwrap()
}

fn set_grad(p: &Tensor, g: &[f32]) {
    let shape = p.shape();
    p.set_grad(Some(Tensor::from_slice(&dev(), g, &shape).unwrap()));
}

fn read(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// The sorted `state.*` names of `opt`'s state (without the `param_groups.*` entries).
fn state_names(opt: &dyn Optimizer) -> Vec<String> {
    let mut names: Vec<String> = opt
        .state()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("state."))
        .collect();
    names.sort();
    names
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
        let cfg = AdamWConfig {
            lr: 0.01,
            weight_decay: 0.5,
            amsgrad,
            ..Default::default()
        };
        let same = AdamConfig {
            lr: cfg.lr,
            betas: cfg.betas,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            amsgrad,
            maximize: false,
        };
        run_three_steps(
            |ps| AdamW::new(ps, cfg).unwrap(),
            adam_reference(same, true),
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
    let wcfg = AdamWConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..Default::default()
    };
    Adam::new(vec![a.clone()], cfg).unwrap().step().unwrap();
    AdamW::new(vec![b.clone()], wcfg).unwrap().step().unwrap();
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
    let names: Vec<String> = state_names(&opt);
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
    let names = state_names(&opt_a);
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
    let t23 = || Tensor::zeros(&d, &[2, 3]).unwrap();
    let step = || Tensor::scalar(&d, 3.0).unwrap();
    let full = |extra: Vec<(String, Tensor)>| {
        let mut v = vec![
            ("state.0.step".to_string(), step()),
            ("state.0.square_avg".to_string(), t23()),
            ("state.0.grad_avg".to_string(), t23()),
        ];
        v.extend(extra);
        v
    };
    assert!(opt.load_state(&full(vec![])).is_ok());
    let bad_cases: Vec<Vec<(String, Tensor)>> = vec![
        // wrong shape
        vec![
            ("state.0.step".to_string(), step()),
            (
                "state.0.square_avg".to_string(),
                Tensor::zeros(&d, &[6]).unwrap(),
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
            ("state.0.step".to_string(), Tensor::scalar(&d, 1.5).unwrap()),
            ("state.0.square_avg".to_string(), t23()),
            ("state.0.grad_avg".to_string(), t23()),
        ],
    ];
    opt.load_state(&good).unwrap();
    let before: Vec<(String, Vec<f32>)> = opt
        .state()
        .into_iter()
        .filter(|(_, t)| t.dtype() == DType::F32)
        .map(|(n, t)| (n, t.to_vec::<f32>().unwrap()))
        .collect();
    for (k, bad) in bad_cases.iter().enumerate() {
        assert!(opt.load_state(bad).is_err(), "bad case {k} accepted");
    }
    let after: Vec<(String, Vec<f32>)> = opt
        .state()
        .into_iter()
        .filter(|(_, t)| t.dtype() == DType::F32)
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
fn assert_lrs(s: &mut dyn LrScheduler, base: f64, want: impl Fn(usize) -> f64, epochs: usize) {
    let b = base as f32;
    assert!((s.lr(b).unwrap() as f64 - want(0)).abs() <= 1e-7 * want(0).abs().max(1e-3));
    for e in 1..=epochs {
        s.step();
        let got = s.lr(b).unwrap() as f64;
        let w = want(e);
        assert!(
            (got - w).abs() <= 1e-6 * w.abs().max(1e-6),
            "epoch {e}: got {got}, want {w}"
        );
        assert_eq!(s.epoch(), e);
        assert_eq!(s.lr_at(0, b, e).unwrap() as f64, got);
    }
}

#[test]
fn step_multistep_exponential_lr_sequences() {
    let mut s = StepLr::new(3, 0.5).unwrap();
    assert_lrs(&mut s, 0.1, |e| 0.1 * 0.5f64.powi((e / 3) as i32), 12);
    let ms = [2usize, 5, 9];
    let mut s = MultiStepLr::new(&ms, 0.1).unwrap();
    assert_lrs(
        &mut s,
        0.2,
        |e| 0.2 * 0.1f64.powi(ms.iter().filter(|&&m| m <= e).count() as i32),
        12,
    );
    // Any order, and a repeated milestone decays twice (PyTorch's Counter).
    let mut s = MultiStepLr::new(&[9, 3, 3], 0.5).unwrap();
    assert_lrs(
        &mut s,
        1.0,
        |e| 0.5f64.powi([3usize, 3, 9].iter().filter(|&&m| m <= e).count() as i32),
        12,
    );
    let mut s = ExponentialLr::new(0.9).unwrap();
    assert_lrs(&mut s, 0.05, |e| 0.05 * 0.9f64.powi(e as i32), 20);
    assert!(StepLr::new(0, 0.5).is_err());
    assert!(ExponentialLr::new(-1.0).is_err());
    assert!(StepLr::new(2, 0.5).unwrap().lr_at(0, -0.1, 0).is_err());
}

#[test]
fn cosine_annealing_lr_sequence() {
    let (base, eta_min, t_max) = (0.1f64, 0.001f64, 10usize);
    let mut s = CosineAnnealingLr::new(t_max, eta_min as f32).unwrap();
    let f = |e: usize| {
        eta_min
            + (base - eta_min) * (1.0 + (std::f64::consts::PI * e as f64 / t_max as f64).cos())
                / 2.0
    };
    assert_lrs(&mut s, base, f, 25);
    assert!((s.lr_at(0, base as f32, t_max).unwrap() as f64 - eta_min).abs() < 1e-9);
    assert!(CosineAnnealingLr::new(0, 0.0).is_err());
}

#[test]
fn warm_restarts_and_polynomial_sequences() {
    // T_0 = 3, T_mult = 2: periods of 3, 6, 12 epochs starting at 0, 3, 9, 21.
    let mut s = CosineAnnealingWarmRestarts::new(3, 2, 0.01).unwrap();
    let f = |e: usize| {
        let (cur, len) = match e {
            0..3 => (e, 3),
            3..9 => (e - 3, 6),
            9..21 => (e - 9, 12),
            _ => (e - 21, 24),
        };
        0.01 + (0.1 - 0.01) * (1.0 + (std::f64::consts::PI * cur as f64 / len as f64).cos()) / 2.0
    };
    assert_lrs(&mut s, 0.1, f, 30);
    let mut s = CosineAnnealingWarmRestarts::new(4, 1, 0.0).unwrap();
    assert_lrs(
        &mut s,
        0.2,
        |e| 0.2 * (1.0 + (std::f64::consts::PI * (e % 4) as f64 / 4.0).cos()) / 2.0,
        13,
    );
    assert!(CosineAnnealingWarmRestarts::new(0, 1, 0.0).is_err());
    assert!(CosineAnnealingWarmRestarts::new(2, 0, 0.0).is_err());
    let mut s = PolynomialLr::new(8, 2.5).unwrap();
    assert_lrs(
        &mut s,
        0.1,
        |e| 0.1 * (1.0 - e.min(8) as f64 / 8.0).powf(2.5),
        12,
    );
    assert!(PolynomialLr::new(0, 1.0).is_err());
    assert!(PolynomialLr::new(5, -1.0).is_err());
}

#[test]
fn linear_warmup_sequences() {
    // LinearLR(start_factor=0.25, end_factor=1, total_iters=4)
    let mut s = LinearWarmup::new(0.25, 4).unwrap();
    assert_lrs(
        &mut s,
        0.1,
        |e| 0.1 * (0.25 + 0.75 * e.min(4) as f64 / 4.0),
        8,
    );
    // LinearLR with PyTorch's defaults (1/3 -> 1 over 5) and an end factor below 1
    let mut s = LinearWarmup::linear(1.0 / 3.0, 0.5, 5).unwrap();
    assert_lrs(
        &mut s,
        0.3,
        |e| 0.3 * (1.0 / 3.0 + (0.5 - 1.0 / 3.0) * e.min(5) as f64 / 5.0),
        8,
    );
    // warmup for 3 epochs into a cosine schedule starting at epoch 3
    let cos = CosineAnnealingLr::new(6, 0.0).unwrap();
    let mut s = LinearWarmup::then(Box::new(cos), 0.1, 3).unwrap();
    let f = |e: usize| {
        if e < 3 {
            0.2 * (0.1 + 0.9 * e as f64 / 3.0)
        } else {
            0.2 * (1.0 + (std::f64::consts::PI * (e - 3) as f64 / 6.0).cos()) / 2.0
        }
    };
    assert_lrs(&mut s, 0.2, f, 10);
    assert!(LinearWarmup::new(0.0, 4).is_err());
    assert!(LinearWarmup::new(0.5, 0).is_err());
    assert!(LinearWarmup::linear(0.5, 1.5, 3).is_err());
}

/// PyTorch's OneCycleLR.get_lr written out for one group: `(lr, momentum)` at `step`.
fn one_cycle_reference(max_lr: f64, total: usize, cfg: &OneCycleConfig, step: usize) -> (f64, f64) {
    let initial = max_lr / cfg.div_factor;
    let min_lr = initial / cfg.final_div_factor;
    let (mx, bs) = (cfg.max_momentum[0] as f64, cfg.base_momentum[0] as f64);
    let t = total as f64;
    let phases = if cfg.three_phase {
        vec![
            (cfg.pct_start * t - 1.0, initial, max_lr, mx, bs),
            (2.0 * cfg.pct_start * t - 2.0, max_lr, initial, bs, mx),
            (t - 1.0, initial, min_lr, mx, mx),
        ]
    } else {
        vec![
            (cfg.pct_start * t - 1.0, initial, max_lr, mx, bs),
            (t - 1.0, max_lr, min_lr, bs, mx),
        ]
    };
    let mut start = 0.0;
    for (i, &(end, a, b, ma, mb)) in phases.iter().enumerate() {
        if step as f64 <= end || i == phases.len() - 1 {
            let pct = (step as f64 - start) / (end - start);
            let an = |s: f64, e: f64| match cfg.anneal_strategy {
                Anneal::Cos => e + (s - e) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0),
                Anneal::Linear => (e - s) * pct + s,
            };
            return (an(a, b), an(ma, mb));
        }
        start = end;
    }
    unreachable!()
}

#[test]
fn one_cycle_rates_and_momenta() {
    for cfg in [
        OneCycleConfig::default(),
        OneCycleConfig {
            anneal_strategy: Anneal::Linear,
            three_phase: true,
            pct_start: 0.25,
            ..Default::default()
        },
    ] {
        let total = 23;
        let s = OneCycleLr::new(&[0.4], total, cfg.clone()).unwrap();
        for e in 0..=total {
            let (lr, m) = one_cycle_reference(0.4, total, &cfg, e);
            let got = s.lr_at(0, 123.0, e).unwrap() as f64;
            // (the linear schedule's extrapolated last step is below 0, as PyTorch's)
            assert!(
                (got - lr).abs() <= 1e-6 * lr.abs(),
                "step {e}: lr {got}, want {lr}"
            );
            let gm = s.momentum_at(0, e).unwrap().unwrap() as f64;
            assert!((gm - m).abs() <= 1e-6, "step {e}: momentum {gm}, want {m}");
        }
        // Start at max_lr / 25, peak at max_lr, end near max_lr / 25 / 1e4.
        assert!((s.lr_at(0, 0.0, 0).unwrap() - 0.4 / 25.0).abs() < 1e-8);
        assert!(s.lr_at(0, 0.0, total + 1).is_err(), "past the last step");
    }
    // No momentum cycling; epochs * steps_per_epoch
    let s = OneCycleLr::with_epochs(
        &[0.1],
        3,
        4,
        OneCycleConfig {
            cycle_momentum: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.total_steps(), 12);
    assert_eq!(s.momentum_at(0, 3).unwrap(), None);
    // pct_start * total_steps = 1: the first phase has zero length (PyTorch divides by 0)
    let s = OneCycleLr::new(
        &[0.1],
        10,
        OneCycleConfig {
            pct_start: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(s.lr_at(0, 0.0, 0).is_err());
    assert!(OneCycleLr::new(&[0.1], 0, OneCycleConfig::default()).is_err());
    assert!(
        OneCycleLr::new(
            &[0.1],
            5,
            OneCycleConfig {
                pct_start: 1.5,
                ..Default::default()
            }
        )
        .is_err()
    );
}

#[test]
fn schedules_set_every_group_from_its_own_base() {
    let mut opt = Sgd::with_groups(vec![
        ParamGroup::new(
            vec![param(&[1.0; 4], &[4])],
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                ..Default::default()
            },
        ),
        ParamGroup::new(
            vec![param(&[1.0; 2], &[2])],
            SgdConfig {
                lr: 0.01,
                ..Default::default()
            },
        ),
    ])
    .unwrap();
    assert_eq!(opt.initial_lrs(), vec![0.1, 0.01]);
    let mut s = StepLr::new(2, 0.5).unwrap();
    assert_eq!(s.apply(&mut opt).unwrap(), 0.1);
    for e in 1..=5 {
        let lr = s.step_optimizer(&mut opt).unwrap();
        let f = 0.5f64.powi(e / 2);
        assert_eq!(opt.lr(), lr);
        assert!((opt.lrs()[0] as f64 - 0.1 * f).abs() < 1e-8);
        assert!((opt.lrs()[1] as f64 - 0.01 * f).abs() < 1e-9);
    }
    // A 1cycle schedule also sets the momentum (SGD's), per group.
    let mut s = OneCycleLr::new(&[0.5, 0.05], 10, OneCycleConfig::default()).unwrap();
    s.apply(&mut opt).unwrap();
    assert_eq!(opt.momentum(0), Some(0.95));
    assert_eq!(opt.momentum(1), Some(0.95));
    for _ in 0..3 {
        s.step_optimizer(&mut opt).unwrap();
    }
    let (lr, m) = one_cycle_reference(0.5, 10, &OneCycleConfig::default(), 3);
    assert!((opt.lrs()[0] as f64 - lr).abs() < 1e-6 * lr);
    assert!((opt.momentum(1).unwrap() as f64 - m).abs() < 1e-6);
    // Adagrad has no momentum: a cycling schedule is an error there and changes nothing.
    let mut ada = Adagrad::new(vec![param(&[1.0; 2], &[2])], AdagradConfig::default()).unwrap();
    assert!(s.apply(&mut ada).is_err());
    assert_eq!(ada.lr(), 1e-2);
    // A per-group list of the wrong length is an error (PyTorch checks it).
    let s = OneCycleLr::new(&[0.1, 0.2, 0.3], 10, OneCycleConfig::default()).unwrap();
    assert!(s.apply(&mut opt).is_err());
    // The count does not advance when applying fails.
    let mut s = OneCycleLr::new(&[0.1], 2, OneCycleConfig::default()).unwrap();
    s.set_epoch(2);
    assert!(s.step_optimizer(&mut opt).is_err());
    assert_eq!(s.epoch(), 2);

    let mut r = ReduceLrOnPlateau::new(PlateauConfig {
        patience: 0,
        ..Default::default()
    })
    .unwrap();
    opt.set_lr(0.025);
    r.step_optimizer_with(&mut opt, 1.0).unwrap(); // best = 1
    let lr = r.step_optimizer_with(&mut opt, 2.0).unwrap(); // bad epoch 1 > patience 0
    assert_eq!(opt.lr(), lr);
    assert!((lr as f64 - 0.0025).abs() < 1e-9);
    assert_eq!(opt.lrs()[1], lr);
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
    let mut s = ReduceLrOnPlateau::new(c).unwrap();
    let mut lr = [0.1f32];
    let got: Vec<f64> = metrics
        .iter()
        .map(|&m| {
            s.step_with(&mut lr, m).unwrap();
            lr[0] as f64
        })
        .collect();
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
    let mut s = ReduceLrOnPlateau::new(c).unwrap();
    let mut lr = [1.0f32];
    let got: Vec<f64> = metrics
        .iter()
        .map(|&m| {
            s.step_with(&mut lr, m).unwrap();
            lr[0] as f64
        })
        .collect();
    let want = plateau_reference(1.0, &c, &metrics.map(|m| m as f64));
    for (e, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() < 1e-6 * w, "epoch {e}: got {g}, want {w}");
    }
    assert!(
        want.last().unwrap() < &1.0,
        "the sequence must reduce at least once"
    );
    assert!(
        ReduceLrOnPlateau::new(PlateauConfig {
            factor: 1.0,
            ..Default::default()
        })
        .is_err()
    );
    // Per-group bounds must match the number of groups.
    let mut s = ReduceLrOnPlateau::new(PlateauConfig::default())
        .unwrap()
        .with_min_lrs(vec![0.1, 0.2])
        .unwrap();
    assert!(s.step_with(&mut [0.5], 1.0).is_err());
    assert_eq!(s.epoch(), 0, "a refused step records nothing");
}

#[test]
fn one_dispatch_per_parameter_per_step_and_no_readback() {
    // A device of its own, so other tests' dispatches do not count.
    let d = Device::new().unwrap();
    let mk = |v: &[f32], s: &[usize]| {
        Tensor::from_slice(&d, v, s)
            .unwrap()
            .requires_grad_(true)
            .unwrap()
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
        Box::new(AdamW::new(ps.clone(), AdamWConfig::default()).unwrap()),
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
    let names = state_names(&opt_a);
    let mut want: Vec<String> = keys.iter().map(|k| format!("state.0.{k}")).collect();
    want.sort();
    assert_eq!(names, want);
    for (n, t) in state.iter().filter(|(n, _)| n.starts_with("state.")) {
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
        |ps| AdamW::new(ps, AdamWConfig::default()).unwrap(),
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
    assert!(state_names(&opt).is_empty());
}

#[test]
fn parameter_groups_have_their_own_hyperparameters_and_global_state_indices() {
    // Group 0: two parameters, SGD with momentum and weight decay; group 1: one parameter,
    // plain SGD at another rate. One step each, then one with group 0's second parameter
    // without a gradient.
    let (a0, b0, c0) = (values(200, 6), values(201, 4), values(202, 3));
    let (ga, gb, gc) = (values(203, 6), values(204, 4), values(205, 3));
    let (a, b, c) = (param(&a0, &[2, 3]), param(&b0, &[4]), param(&c0, &[3]));
    let g0 = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.1,
        ..Default::default()
    };
    let g1 = SgdConfig {
        lr: 0.02,
        ..Default::default()
    };
    let mut opt = Sgd::with_groups(vec![
        ParamGroup::new(vec![a.clone(), b.clone()], g0),
        ParamGroup::new(vec![c.clone()], g1),
    ])
    .unwrap();
    assert_eq!(opt.num_groups(), 2);
    assert_eq!(opt.parameters().len(), 3);
    assert_eq!(opt.group_parameters(1).unwrap().len(), 1);
    assert!(opt.group_parameters(2).is_none());
    assert_eq!(opt.lrs(), vec![0.1, 0.02]);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let (mut wa, mut wb, mut wc) = (f64s(&a0), f64s(&b0), f64s(&c0));
    let (mut ba, mut bb) = (vec![0.0; 6], vec![0.0; 4]);
    let sgd_m = |w: &mut [f64], buf: &mut [f64], g: &[f32], first: bool| {
        for i in 0..w.len() {
            let d = g[i] as f64 + 0.1 * w[i];
            buf[i] = if first { d } else { 0.9 * buf[i] + d };
            w[i] -= 0.1 * buf[i];
        }
    };
    for step in 0..2 {
        opt.zero_grad();
        set_grad(&a, &ga);
        if step == 0 {
            set_grad(&b, &gb);
        }
        set_grad(&c, &gc);
        opt.step().unwrap();
        sgd_m(&mut wa, &mut ba, &ga, step == 0);
        if step == 0 {
            sgd_m(&mut wb, &mut bb, &gb, true);
        }
        for i in 0..3 {
            wc[i] -= 0.02 * gc[i] as f64;
        }
    }
    assert_close(&read(&a), &wa, 1e-6, 1e-5);
    assert_close(&read(&b), &wb, 1e-6, 1e-5);
    assert_close(&read(&c), &wc, 1e-6, 1e-5);
    // PyTorch's numbering across groups: 0 and 1 in group 0 have momentum buffers, 2 in
    // plain group 1 has none.
    assert_eq!(
        state_names(&opt),
        ["state.0.momentum_buffer", "state.1.momentum_buffer"]
    );
    let st = opt.state();
    let get = |k: &str| st.iter().find(|(n, _)| n == k).map(|(_, t)| t.clone());
    assert_eq!(
        get("param_groups.1.params")
            .unwrap()
            .to_vec::<u32>()
            .unwrap(),
        vec![2]
    );
    assert_eq!(
        get("param_groups.0.params")
            .unwrap()
            .to_vec::<u32>()
            .unwrap(),
        vec![0, 1]
    );
    assert_eq!(get("param_groups.1.lr").unwrap().to_scalar().unwrap(), 0.02);
    assert_eq!(
        get("param_groups.0.momentum").unwrap().to_scalar().unwrap(),
        0.9
    );
    assert_eq!(
        get("param_groups.0.nesterov")
            .unwrap()
            .to_vec::<u32>()
            .unwrap(),
        vec![0]
    );
    // A parameter in two groups, and no group at all, are errors.
    assert!(
        Sgd::with_groups(vec![
            ParamGroup::new(vec![a.clone()], g0),
            ParamGroup::new(vec![a.clone()], g1),
        ])
        .is_err()
    );
    assert!(Sgd::with_groups(vec![]).is_err());
    // A bad option in group 1 is an error naming the group.
    let err = Adam::with_groups(vec![
        ParamGroup::new(vec![a.clone()], AdamConfig::default()),
        ParamGroup::new(
            vec![c.clone()],
            AdamConfig {
                betas: (0.9, 1.0),
                ..Default::default()
            },
        ),
    ])
    .err()
    .unwrap();
    assert!(err.to_string().contains("group 1"), "{err}");
    // set_group_lr checks the index; a negative rate is refused by the next step.
    assert!(opt.set_group_lr(2, 0.1).is_err());
    opt.set_group_lr(1, 0.5).unwrap();
    assert_eq!(opt.lrs(), vec![0.1, 0.5]);
    assert_eq!(opt.initial_lrs(), vec![0.1, 0.02]);
}

#[test]
fn weight_decay_groups_leave_biases_and_norms_undecayed() {
    let w = param(&values(210, 12), &[3, 4]);
    let bias = param(&values(211, 3), &[3]);
    let norm = param(&values(212, 4), &[4]);
    let named = vec![
        ("fc.weight".to_string(), w.clone()),
        ("fc.bias".to_string(), bias.clone()),
        ("ln.weight".to_string(), norm.clone()),
    ];
    let cfg = AdamWConfig {
        lr: 0.01,
        weight_decay: 0.5,
        ..Default::default()
    };
    let groups = weight_decay_groups(named, cfg);
    assert_eq!(groups.len(), 2);
    assert!(groups[0].params[0].same(&w));
    assert_eq!(groups[1].params.len(), 2);
    assert_eq!(groups[0].cfg.weight_decay, 0.5);
    assert_eq!(groups[1].cfg.weight_decay, 0.0);
    assert_eq!(groups[1].cfg.lr, 0.01);
    let mut opt = AdamW::with_groups(groups).unwrap();
    // With a zero gradient Adam moves nothing; only decoupled decay changes the weight.
    for p in [&w, &bias, &norm] {
        set_grad(p, &vec![0.0; p.numel()]);
    }
    let (w0, b0) = (read(&w), read(&bias));
    opt.step().unwrap();
    let want: Vec<f64> = w0.iter().map(|&x| x as f64 * (1.0 - 0.01 * 0.5)).collect();
    assert_close(&read(&w), &want, 1e-7, 1e-6);
    assert_eq!(read(&bias), b0);
}

#[test]
fn momentum_switched_on_later_starts_its_buffer_from_the_gradient() {
    // SGD without momentum keeps no state; set_group_momentum (what a 1cycle schedule
    // calls) makes the next step create the buffer from the gradient, as PyTorch.
    let p0 = values(220, 5);
    let g = values(221, 5);
    let p = param(&p0, &[5]);
    let mut opt = Sgd::new(
        vec![p.clone()],
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    set_grad(&p, &g);
    opt.step().unwrap();
    assert!(state_names(&opt).is_empty());
    opt.set_group_momentum(0, 0.5).unwrap();
    assert_eq!(opt.momentum(0), Some(0.5));
    opt.step().unwrap();
    opt.step().unwrap();
    let mut w: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
    let mut buf = [0.0; 5];
    for i in 0..5 {
        let gi = g[i] as f64;
        w[i] -= 0.1 * gi; // plain
        buf[i] = gi; // first use of the buffer
        w[i] -= 0.1 * buf[i];
        buf[i] = 0.5 * buf[i] + gi;
        w[i] -= 0.1 * buf[i];
    }
    assert_close(&read(&p), &w, 1e-6, 1e-5);
    assert_eq!(state_names(&opt), ["state.0.momentum_buffer"]);
    // RMSprop's momentum buffer appearing later starts at zero; Adagrad has no momentum.
    let q = param(&p0, &[5]);
    let mut rms = RmsProp::new(vec![q.clone()], RmsPropConfig::default()).unwrap();
    set_grad(&q, &g);
    rms.step().unwrap();
    rms.set_group_momentum(0, 0.9).unwrap();
    rms.step().unwrap();
    assert_eq!(
        state_names(&rms),
        [
            "state.0.momentum_buffer",
            "state.0.square_avg",
            "state.0.step"
        ]
    );
    let mut ada = Adagrad::new(vec![q], AdagradConfig::default()).unwrap();
    assert!(ada.set_group_momentum(0, 0.9).is_err());
    assert_eq!(ada.momentum(0), None);
    assert!(opt.set_group_momentum(0, -1.0).is_err());
    let mut adam = Adam::new(vec![param(&p0, &[5])], AdamConfig::default()).unwrap();
    assert!(adam.set_group_momentum(0, 1.0).is_err());
    adam.set_group_momentum(0, 0.8).unwrap();
    assert_eq!(adam.config().betas, (0.8, 0.999));
}

#[test]
fn group_hyperparameters_round_trip_through_the_state() {
    let mk = |lr1: f32| {
        Adam::with_groups(vec![
            ParamGroup::new(
                vec![param(&values(230, 6), &[6])],
                AdamConfig {
                    lr: 0.01,
                    ..Default::default()
                },
            ),
            ParamGroup::new(
                vec![param(&values(231, 3), &[3])],
                AdamConfig {
                    lr: lr1,
                    amsgrad: true,
                    betas: (0.8, 0.99),
                    weight_decay: 0.1,
                    ..Default::default()
                },
            ),
        ])
        .unwrap()
    };
    let mut a = mk(0.1);
    for p in a.parameters() {
        set_grad(p, &values(232, p.numel()));
    }
    a.step().unwrap();
    a.set_group_lr(1, 0.05).unwrap(); // e.g. a plateau reduction
    let state = a.state();
    // A fresh optimizer built with other options for group 1 takes them from the state.
    let mut b = Adam::with_groups(vec![
        ParamGroup::new(vec![param(&values(230, 6), &[6])], AdamConfig::default()),
        ParamGroup::new(vec![param(&values(231, 3), &[3])], AdamConfig::default()),
    ])
    .unwrap();
    b.load_state(&state).unwrap();
    assert_eq!(b.lrs(), vec![0.01, 0.05]);
    assert_eq!(b.initial_lrs(), vec![0.01, 0.1]);
    assert_eq!(b.group_config(1).unwrap(), &{
        let mut c = *a.group_config(1).unwrap();
        c.lr = 0.05;
        c
    });
    assert!(b.group_config(1).unwrap().amsgrad);
    // Without param_groups entries the optimizer keeps its own options.
    let only_state: Vec<_> = state
        .iter()
        .filter(|(n, _)| n.starts_with("state."))
        .cloned()
        .collect();
    let mut c = mk(0.3);
    c.load_state(&only_state).unwrap();
    assert_eq!(c.lrs(), vec![0.01, 0.3]);
    // Refused, keeping everything: an Adam state in AdamW, another group layout, a bad
    // hyperparameter, an unknown key, a missing buffer that the loaded options need.
    let mut w = AdamW::with_groups(vec![
        ParamGroup::new(vec![param(&values(230, 6), &[6])], AdamWConfig::default()),
        ParamGroup::new(vec![param(&values(231, 3), &[3])], AdamWConfig::default()),
    ])
    .unwrap();
    let err = w.load_state(&state).err().unwrap();
    assert!(err.to_string().contains("decoupled_weight_decay"), "{err}");
    let d = dev();
    let with = |name: &str, t: Tensor| {
        let mut s: Vec<(String, Tensor)> =
            state.iter().filter(|(n, _)| n != name).cloned().collect();
        s.push((name.to_string(), t));
        s
    };
    let bad = [
        with(
            "param_groups.1.params",
            Tensor::from_slice(&d, &[0u32, 1], &[2]).unwrap(),
        ),
        with(
            "param_groups.1.betas",
            Tensor::from_slice(&d, &[0.9f32, 1.5], &[2]).unwrap(),
        ),
        with("param_groups.0.momentum", Tensor::scalar(&d, 0.9).unwrap()),
        with("param_groups.2.lr", Tensor::scalar(&d, 0.9).unwrap()),
        with(
            "param_groups.0.amsgrad",
            Tensor::from_slice(&d, &[1u32], &[]).unwrap(),
        ),
        with("param_groups.0.lr", Tensor::scalar(&d, -1.0).unwrap()),
    ];
    let before = c.lrs();
    for (k, s) in bad.iter().enumerate() {
        assert!(c.load_state(s).is_err(), "bad case {k} accepted");
        assert_eq!(c.lrs(), before);
    }
}

/// `(sum |g|^p)^(1/p)` (or the largest `|g|`) over every value, in f64.
fn norm_of(gs: &[&[f32]], p: f64) -> f64 {
    let all = gs.iter().flat_map(|g| g.iter()).map(|&x| (x as f64).abs());
    if p.is_infinite() {
        all.fold(0.0, f64::max)
    } else {
        all.map(|x| x.powf(p)).sum::<f64>().powf(1.0 / p)
    }
}

#[test]
fn clip_grad_norm_of_any_order() {
    let g1 = values(240, 200);
    let g2 = values(241, 50);
    for p in [1.0f32, 2.0, 3.0, 0.5, f32::INFINITY] {
        let total = norm_of(&[&g1, &g2], p as f64);
        for max_norm in [0.2f32, 1e4] {
            let a = param(&[0.0; 200], &[20, 10]);
            let b = param(&[0.0; 50], &[50]);
            set_grad(&a, &g1);
            set_grad(&b, &g2);
            let ps = vec![a.clone(), b.clone()];
            let norm = clip_grad_norm_with(&ps, max_norm, p, false).unwrap();
            let got = norm.item().unwrap() as f64;
            assert!(
                (got - total).abs() <= 1e-5 * total,
                "p {p}: norm {got} vs {total}"
            );
            let coef = (max_norm as f64 / (total + 1e-6)).min(1.0);
            for (t, g) in [(&a, &g1), (&b, &g2)] {
                let want: Vec<f64> = g.iter().map(|&x| x as f64 * coef).collect();
                assert_close(
                    &t.grad().unwrap().to_vec::<f32>().unwrap(),
                    &want,
                    1e-7,
                    2e-5,
                );
            }
        }
    }
    for p in [0.0, -1.0, f32::NAN, f32::NEG_INFINITY] {
        let a = param(&[0.0; 3], &[3]);
        set_grad(&a, &[1.0; 3]);
        assert!(clip_grad_norm_with(&[a], 1.0, p, false).is_err(), "p {p}");
    }
}

#[test]
fn clip_grad_norm_of_nan_and_inf_gradients_follows_pytorch() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    for p in [2.0f32, 1.0, f32::INFINITY] {
        // A NaN anywhere: the norm is NaN and every gradient becomes NaN.
        let a = param(&[0.0; 3], &[3]);
        let b = param(&[0.0; 2], &[2]);
        set_grad(&a, &[1.0, nan, 2.0]);
        set_grad(&b, &[inf, 3.0]);
        let n = clip_grad_norm_with(&[a.clone(), b.clone()], 1.0, p, false).unwrap();
        assert!(n.item().unwrap().is_nan(), "p {p}");
        for t in [&a, &b] {
            let g = t.grad().unwrap().to_vec::<f32>().unwrap();
            assert!(g.iter().all(|x| x.is_nan()), "p {p}: {g:?}");
        }
        // An infinity: the norm is inf, the coefficient 0, so finite values become 0
        // and infinite ones NaN.
        let a = param(&[0.0; 3], &[3]);
        set_grad(&a, &[1.0, -inf, 2.0]);
        let n = clip_grad_norm_with(std::slice::from_ref(&a), 1.0, p, false).unwrap();
        assert_eq!(n.item().unwrap(), inf, "p {p}");
        let g = a.grad().unwrap().to_vec::<f32>().unwrap();
        assert_eq!(g[0], 0.0);
        assert!(g[1].is_nan());
        assert_eq!(g[2], 0.0);
        // error_if_nonfinite: Err, gradients unchanged.
        set_grad(&a, &[1.0, nan, 2.0]);
        assert!(clip_grad_norm_with(std::slice::from_ref(&a), 1.0, p, true).is_err());
        let g = a.grad().unwrap().to_vec::<f32>().unwrap();
        assert_eq!((g[0], g[2]), (1.0, 2.0));
        assert!(g[1].is_nan());
        set_grad(&a, &[3.0, 4.0, 0.0]);
        let n = clip_grad_norm_with(std::slice::from_ref(&a), 1.0, p, true).unwrap();
        assert!(n.item().unwrap().is_finite());
    }
}

#[test]
fn clip_grad_norm_reads_nothing_back() {
    let d = Device::new().unwrap();
    let mk = |n: usize| {
        let p = Tensor::from_slice(&d, &values(250, n), &[n])
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        p.set_grad(Some(
            Tensor::from_slice(&d, &values(251 + n as u64, n), &[n]).unwrap(),
        ));
        p
    };
    let ps = vec![mk(300), mk(7)];
    for p in [2.0, 3.0, f32::INFINITY] {
        d.sync().unwrap();
        let before = d.dispatch_stats();
        let n = clip_grad_norm_with(&ps, 0.5, p, false).unwrap();
        clip_grad_value(&ps, 0.1).unwrap();
        assert_eq!(d.dispatch_stats().submits, before.submits, "p {p}");
        assert!(n.item().unwrap() > 0.0);
    }
}

#[test]
fn state_with_groups_resumes_through_a_checkpoint_file() {
    use cinder_nn::checkpoint;
    // Group 1 is empty (a model without biases); the file round trip keeps the group
    // layout, the rates and the moments, and the resumed step is bit-exact.
    let named = || {
        vec![
            ("w".to_string(), param(&values(260, 12), &[3, 4])),
            ("v".to_string(), param(&values(261, 6), &[2, 3])),
        ]
    };
    let cfg = AdamWConfig {
        lr: 0.01,
        amsgrad: true,
        ..Default::default()
    };
    let ps_a = named();
    let mut a = AdamW::with_groups(weight_decay_groups(ps_a.clone(), cfg)).unwrap();
    assert_eq!(a.group_parameters(1).unwrap().len(), 0);
    for _ in 0..2 {
        for (_, p) in &ps_a {
            set_grad(p, &values(262, p.numel()));
        }
        a.step().unwrap();
    }
    a.set_group_lr(0, 0.004).unwrap();
    let dir = std::env::temp_dir().join(format!("cinder-optim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("optim.safetensors");
    checkpoint::save(&path, &a.state(), &Default::default()).unwrap();
    let loaded = checkpoint::load(&path, &dev()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let ps_b: Vec<(String, Tensor)> = ps_a
        .iter()
        .map(|(n, p)| (n.clone(), param(&read(p), &p.shape())))
        .collect();
    let mut b = AdamW::with_groups(weight_decay_groups(ps_b.clone(), cfg)).unwrap();
    b.load_state(&loaded).unwrap();
    assert_eq!(b.lrs(), vec![0.004, 0.01]);
    for (x, y) in ps_a.iter().zip(&ps_b) {
        set_grad(&x.1, &values(263, x.1.numel()));
        set_grad(&y.1, &values(263, y.1.numel()));
    }
    a.step().unwrap();
    b.step().unwrap();
    for (x, y) in ps_a.iter().zip(&ps_b) {
        assert_eq!(read(&x.1), read(&y.1));
    }
}

#[test]
fn groups_and_a_cycling_schedule_keep_one_dispatch_per_parameter() {
    let d = Device::new().unwrap();
    let mk = |n: usize| {
        let p = Tensor::from_slice(&d, &values(270, n), &[n])
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        p.set_grad(Some(Tensor::from_slice(&d, &values(271, n), &[n]).unwrap()));
        p
    };
    let cfg = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        nesterov: true,
        ..Default::default()
    };
    let mut opt = Sgd::with_groups(vec![
        ParamGroup::new(vec![mk(40), mk(9)], cfg),
        ParamGroup::new(
            vec![mk(5)],
            SgdConfig {
                weight_decay: 0.1,
                ..cfg
            },
        ),
    ])
    .unwrap();
    let mut s = OneCycleLr::new(&[0.5, 0.05], 10, OneCycleConfig::default()).unwrap();
    s.apply(&mut opt).unwrap();
    opt.step().unwrap(); // first step: pipelines and buffers
    d.sync().unwrap();
    let before = d.dispatch_stats();
    for _ in 0..3 {
        s.step_optimizer(&mut opt).unwrap();
        opt.step().unwrap();
    }
    let after = d.dispatch_stats();
    assert_eq!(
        after.dispatches - before.dispatches,
        9,
        "3 parameters x 3 steps"
    );
    assert_eq!(after.submits, before.submits);
}
