//! Gradchecks of the derivative ops that backward rules use and users never see (the
//! derivative `UnaryOp`s, the fused `grad op input` kernels, the softmax backward helpers):
//! their own backward rules make higher-order gradients work, so they are checked here,
//! inside the crate, against central finite differences like every public op.

use cinder_device::{Device, Result, UnaryOp};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::{GradcheckOptions, Tensor, gradcheck};

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

fn uniform(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// |v| in [0.2, 1), away from the kinks.
fn away_from_zero(seed: u64, n: usize) -> Vec<f32> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let m = r.random_range(0.2f32..1.0);
            if r.random_bool(0.5) { m } else { -m }
        })
        .collect()
}

fn param(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&dev(), data, shape)
        .and_then(|t| t.requires_grad_(true))
        .expect("upload")
}

#[track_caller]
fn check(inputs: &[&Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let owned: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    if let Err(e) = gradcheck(&owned, f, &GradcheckOptions::default()) {
        panic!("{e}");
    }
}

/// Every differentiable unary op through the generic entry point, the derivative ops
/// included (the named public ones are also checked by the integration tests).
#[test]
fn every_differentiable_unary_op() {
    let skip = [
        UnaryOp::Sign,
        UnaryOp::ReluMask,
        UnaryOp::LeakyReluGrad,
        UnaryOp::IsNan,
        // its backward returns Err (no polygamma(2, x)); trigamma is checked as digamma's
        // gradient instead
        UnaryOp::Trigamma,
    ];
    for (i, &op) in UnaryOp::ALL.iter().enumerate() {
        if skip.contains(&op) {
            continue;
        }
        let (a, b) = match op {
            UnaryOp::Clamp => (-0.5, 0.6),
            UnaryOp::Powf => (2.5, 0.0),
            UnaryOp::LeakyRelu => (0.1, 0.0),
            UnaryOp::Elu | UnaryOp::EluGrad => (0.7, 0.0),
            UnaryOp::Affine => (-1.5, 0.3),
            _ => (0.0, 0.0),
        };
        let seed = i as u64;
        let mut x = match op {
            UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Powf
            | UnaryOp::Lgamma
            | UnaryOp::Digamma => uniform(seed, 12, 0.5, 2.0),
            UnaryOp::SigmoidGradFromOutput => uniform(seed, 12, 0.05, 0.95),
            // every piece of the hard activations, away from the kinks at -3 and 3
            UnaryOp::Hardsigmoid | UnaryOp::Hardswish => vec![
                -5.0, -3.4, -2.6, -1.0, -0.3, 0.2, 0.9, 2.5, 3.3, 4.0, 6.0, 1.7,
            ],
            _ => away_from_zero(seed, 12),
        };
        if op == UnaryOp::Clamp {
            // keep clear of the bounds by more than eps
            for v in &mut x {
                if (*v - a).abs() < 0.05 || (*v - b).abs() < 0.05 {
                    *v += 0.1;
                }
            }
        }
        let x = param(&x, &[3, 4]);
        let r = gradcheck(&[x], |t| t[0].unary(op, a, b), &Default::default());
        assert!(r.is_ok(), "{op:?}: {}", r.unwrap_err());
    }
}

#[test]
fn zero_derivative_ops_do_not_require_grad() {
    let x = param(&uniform(1, 4, -1.0, 1.0), &[4]);
    assert!(!x.relu_mask().unwrap().requires_grad());
    assert!(!x.leaky_relu_grad(0.1).unwrap().requires_grad());
}

#[test]
fn fused_backward_helpers_are_differentiable() {
    // relu_backward in its gradient argument; sigmoid/tanh_backward in both arguments.
    let g = param(&uniform(9, 8, -1.0, 1.0), &[2, 4]);
    let x = param(&away_from_zero(10, 8), &[2, 4]);
    let y = param(&uniform(11, 8, 0.1, 0.9), &[2, 4]);
    check(&[&g], |t| t[0].relu_backward(&x));
    check(&[&g, &y], |t| t[0].sigmoid_backward(&t[1]));
    check(&[&g, &y], |t| t[0].tanh_backward(&t[1]));
}

#[test]
fn softmax_backward_helpers_are_differentiable() {
    let g = param(&uniform(34, 15, -1.0, 1.0), &[3, 5]);
    let z = param(&uniform(35, 15, -1.0, 1.0), &[3, 5]);
    check(&[&g, &z], |t| t[0].softmax_backward(&t[1].softmax(1)?, 1));
    check(&[&g, &z], |t| {
        t[0].log_softmax_backward(&t[1].log_softmax(1)?, 1)
    });
}

#[test]
fn channel_affine_is_differentiable_in_every_operand() {
    let x = param(&uniform(60, 24, -1.0, 1.0), &[2, 3, 4]);
    let z = param(&uniform(61, 24, -1.0, 1.0), &[2, 3, 4]);
    let a = param(&uniform(62, 3, -1.0, 1.0), &[3]);
    let d = param(&uniform(63, 3, -1.0, 1.0), &[3]);
    let b = param(&uniform(64, 3, -1.0, 1.0), &[3]);
    check(&[&x, &a, &d], |t| t[0].channel_affine(&t[1], &t[2], None));
    check(&[&x, &a, &d, &z, &b], |t| {
        t[0].channel_affine(&t[1], &t[2], Some((&t[3], &t[4])))
    });
    // [N, C] (no trailing axes) and the value itself
    let x2 = param(&uniform(65, 6, -1.0, 1.0), &[2, 3]);
    check(&[&x2, &a, &d], |t| t[0].channel_affine(&t[1], &t[2], None));
    let y = x
        .channel_affine(&a, &d, Some((&z, &b)))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let (xv, zv) = (x.to_vec::<f32>().unwrap(), z.to_vec::<f32>().unwrap());
    let (av, dv, bv) = (
        a.to_vec::<f32>().unwrap(),
        d.to_vec::<f32>().unwrap(),
        b.to_vec::<f32>().unwrap(),
    );
    for i in 0..24 {
        let c = (i / 4) % 3;
        let want = av[c] * xv[i] + bv[c] * zv[i] + dv[c];
        assert!((y[i] - want).abs() < 1e-5, "{i}: {} vs {want}", y[i]);
    }
}
