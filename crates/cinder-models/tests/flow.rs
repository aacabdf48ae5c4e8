//! RealNVP: the log-determinant against a brute-force Jacobian (autograd, one backward pass
//! per output dimension, LU in f64 on the host), exact inversion, the bits-per-dimension
//! formula against a host computation, a short training run whose bits/dim falls, and
//! errors for bad input.

use cinder_autograd::{Tensor, grad, no_grad};
use cinder_data::mnist::{self, Split};
use cinder_device::Device;
use cinder_models::{RealNvp, RealNvpConfig};
use cinder_nn::VarStore;
use cinder_nn::optim::{Adam, AdamConfig, Optimizer};

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

fn cfg(image: [usize; 3], scales: usize, couplings: usize, hidden: usize) -> RealNvpConfig {
    RealNvpConfig {
        image,
        scales,
        couplings,
        hidden,
        blocks: 1,
        alpha: 0.05,
    }
}

/// Overwrites every parameter with random draws, so that no coupling is the identity (the
/// zero-initialized output convolutions would make it one): convolution weights
/// `N(0, (gain^2 / fan_in))`, biases `N(0, 0.1^2)`, the `tanh` scales `N(0, 1)`.
fn randomize(vs: &VarStore, dev: &Device, gain: f32) {
    for (i, (name, p)) in vs.named_parameters().iter().enumerate() {
        let shape = p.shape();
        let std = if name.ends_with("scale") {
            1.0
        } else if name.ends_with("weight") {
            gain / ((p.numel() / shape[0]) as f32).sqrt()
        } else {
            0.1
        };
        let r = Tensor::rand_normal(dev, &shape, 0.0, std, 4242, i as u64).unwrap();
        p.set_data(&r).unwrap();
    }
}

/// `log|det a|` of a row-major `d x d` matrix by LU with partial pivoting in f64.
fn log_abs_det(mut a: Vec<f64>, d: usize) -> f64 {
    let mut acc = 0.0;
    for k in 0..d {
        let p = (k..d)
            .max_by(|&i, &j| a[i * d + k].abs().total_cmp(&a[j * d + k].abs()))
            .unwrap();
        if p != k {
            for c in 0..d {
                a.swap(k * d + c, p * d + c);
            }
        }
        let piv = a[k * d + k];
        assert!(piv != 0.0, "singular Jacobian");
        acc += piv.abs().ln();
        for i in k + 1..d {
            let f = a[i * d + k] / piv;
            for c in k..d {
                a[i * d + c] -= f * a[k * d + c];
            }
        }
    }
    acc
}

/// The Jacobians `dz/dx` of each of the `n` examples (`[n][d * d]`, row `j` = output `j`),
/// by one backward pass per output dimension of the summed batch (examples are
/// independent, so each pass gives row `j` of every example's Jacobian).
fn jacobians(x: &Tensor, d: usize, f: impl Fn(&Tensor) -> Tensor) -> Vec<Vec<f64>> {
    let n = x.shape()[0];
    let mut jac = vec![vec![0f64; d * d]; n];
    for j in 0..d {
        let z = f(x);
        let out = z.narrow(1, j, 1).unwrap().sum_all().unwrap();
        let g = grad(&[&out], &[x], false).unwrap().remove(0);
        let g = g.to_vec::<f32>().unwrap();
        for (e, jm) in jac.iter_mut().enumerate() {
            for i in 0..d {
                jm[j * d + i] = g[e * d + i] as f64;
            }
        }
    }
    jac
}

#[test]
fn log_det_matches_a_brute_force_jacobian_on_a_small_flow() {
    let dev = dev();
    let vs = VarStore::new(&dev, 1);
    // 1x4x4: 2 checkerboard couplings, squeeze to 4x2x2, 2 channel couplings, split to
    // 2x2x2, 2 checkerboard couplings; D = 16
    let flow = RealNvp::new(&vs.root(), cfg([1, 4, 4], 2, 2, 8)).unwrap();
    randomize(&vs, &dev, 1.0);
    let (n, d) = (3, 16);
    let y = Tensor::rand_normal(&dev, &[n, 1, 4, 4], 0.0, 1.0, 9, 0)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let (z, ld) = flow.forward(&y).unwrap();
    assert_eq!(z.shape(), vec![n, d]);
    let ld = ld.to_vec::<f32>().unwrap();
    let jac = jacobians(&y, d, |y| flow.forward(y).unwrap().0);
    for e in 0..n {
        let want = log_abs_det(jac[e].clone(), d);
        eprintln!(
            "example {e}: log|det dz/dy| model {} brute force {want}",
            ld[e]
        );
        // the parameters are far from the identity: a log-det near 0 would test nothing
        assert!(want.abs() > 0.5, "example {e}: log|det| {want} too small");
        assert!(
            (ld[e] as f64 - want).abs() < 1e-4,
            "example {e}: model {} brute force {want}",
            ld[e]
        );
    }

    // the logit transform in front: log|det dz/dx| = logit's + the flow's
    let x = Tensor::rand_uniform(&dev, &[n, 1, 4, 4], 0.05, 0.95, 10, 0)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let (yl, ld_logit) = flow.logit(&x).unwrap();
    let (_, ld_flow) = flow.forward(&yl).unwrap();
    let total = ld_logit.add(&ld_flow).unwrap().to_vec::<f32>().unwrap();
    let jac = jacobians(&x, d, |x| {
        flow.forward(&flow.logit(x).unwrap().0).unwrap().0
    });
    for e in 0..n {
        let want = log_abs_det(jac[e].clone(), d);
        assert!(
            (total[e] as f64 - want).abs() < 2e-4,
            "example {e}: model {} brute force {want}",
            total[e]
        );
    }
}

#[test]
fn inverse_of_forward_is_the_identity_and_samples_are_pixels() {
    let dev = dev();
    for (scales, couplings) in [(2, 3), (3, 2)] {
        let vs = VarStore::new(&dev, 2);
        let flow = RealNvp::new(&vs.root(), cfg([1, 28, 28], scales, couplings, 8)).unwrap();
        randomize(&vs, &dev, 0.5);
        no_grad(|| {
            // logit-space images lie in [-2.94, 2.94]
            let y = Tensor::rand_uniform(&dev, &[4, 1, 28, 28], -3.0, 3.0, 3, 0).unwrap();
            let (z, ld) = flow.forward(&y).unwrap();
            let back = flow.inverse(&z).unwrap();
            let err = back.sub(&y).unwrap().abs().unwrap().max_all().unwrap();
            let err = err.item().unwrap();
            eprintln!("scales {scales}: max |y - f^-1(f(y))| = {err}");
            assert!(err <= 1e-5, "scales {scales}: max |y - f^-1(f(y))| = {err}");
            // z differs from y: the flow is not the identity
            let moved = z
                .sub(&y.reshape(&[4, 784]).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .item()
                .unwrap();
            assert!(moved > 0.1, "scales {scales}: z = y ({moved})");
            assert!(ld.to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));
            // the other way round: z -> y -> z
            let z2 = Tensor::rand_normal(&dev, &[2, 784], 0.0, 1.0, 5, 0).unwrap();
            let (again, _) = flow.forward(&flow.inverse(&z2).unwrap()).unwrap();
            let err = again.sub(&z2).unwrap().abs().unwrap().max_all().unwrap();
            assert!(err.item().unwrap() <= 1e-4, "scales {scales}: z round trip");

            let s = flow.sample(6, 0.7, 11).unwrap();
            assert_eq!(s.shape(), vec![6, 1, 28, 28]);
            let v = s.to_vec::<f32>().unwrap();
            assert!(v.iter().all(|p| (0.0..=1.0).contains(p)));
        });
    }
}

#[test]
fn bits_per_dim_of_the_initial_identity_flow_matches_the_host_formula() {
    // zero-initialized output convolutions: z = y, so the bits/dim is a closed form of the
    // dequantized pixels, computed here in f64
    let dev = dev();
    let vs = VarStore::new(&dev, 3);
    let flow = RealNvp::new(&vs.root(), cfg([1, 8, 8], 2, 2, 4)).unwrap();
    let bytes: Vec<f32> = (0..2 * 64).map(|i| ((i * 37) % 256) as f32).collect();
    let px: Vec<f32> = bytes.iter().map(|b| b / 255.0).collect();
    let x = Tensor::from_slice(&dev, &px, &[2, 1, 8, 8]).unwrap();
    let bpd = flow
        .bits_per_dim(&x, 21, 7)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let xc = flow.dequantize(&x, 21, 7).unwrap().to_vec::<f32>().unwrap();
    let a = 0.05f64;
    for e in 0..2 {
        let mut lp = 0f64;
        for i in 0..64 {
            let c = xc[e * 64 + i] as f64;
            // the dequantized value lies in its byte's bin
            let b = bytes[e * 64 + i] as f64;
            assert!(
                c >= b / 256.0 - 1e-6 && c < (b + 1.0) / 256.0 + 1e-6,
                "{c} {b}"
            );
            let p = a + (1.0 - 2.0 * a) * c;
            let y = (p / (1.0 - p)).ln();
            lp += -0.5 * y * y - 0.5 * (2.0 * std::f64::consts::PI).ln();
            lp += (1.0 - 2.0 * a).ln() - p.ln() - (1.0 - p).ln();
        }
        let want = 8.0 - lp / (64.0 * std::f64::consts::LN_2);
        assert!(
            (bpd[e] as f64 - want).abs() < 1e-4,
            "example {e}: {} vs {want}",
            bpd[e]
        );
    }
}

#[test]
fn a_few_adam_steps_lower_the_test_bits_per_dim() {
    let dev = dev();
    let d = mnist::load(&mnist::data_dir(None), Split::Train)
        .expect("Fashion-MNIST (scripts/setup.sh)")
        .take(320);
    let px: Vec<f32> = d.images().iter().map(|&p| p as f32 / 255.0).collect();
    let batches: Vec<Tensor> = px
        .chunks(64 * 784)
        .map(|c| Tensor::from_slice(&dev, c, &[c.len() / 784, 1, 28, 28]).unwrap())
        .collect();
    // the last batch is held out
    let (train, held) = batches.split_at(4);
    let vs = VarStore::new(&dev, 4);
    let flow = RealNvp::new(&vs.root(), cfg([1, 28, 28], 2, 2, 8)).unwrap();
    let mut opt = Adam::new(
        vs.parameters(),
        AdamConfig {
            lr: 3e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let eval = || {
        no_grad(|| {
            let b = flow.bits_per_dim(&held[0], 99, 0).unwrap();
            b.mean_all().unwrap().item().unwrap()
        })
    };
    let before = eval();
    let mut step = 0u64;
    for _ in 0..3 {
        for x in train {
            let loss = flow.bits_per_dim(x, 5, step).unwrap().mean_all().unwrap();
            opt.zero_grad();
            loss.backward().unwrap();
            opt.step().unwrap();
            step += 1;
        }
    }
    let after = eval();
    eprintln!("held-out bits/dim {before} -> {after} after {step} steps");
    assert!(before.is_finite() && after.is_finite());
    assert!(
        after < before - 1.0,
        "held-out bits/dim {before} -> {after} after {step} steps"
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dev = dev();
    let vs = VarStore::new(&dev, 5);
    let root = vs.root();
    // sides not divisible by 2^(scales - 1), zero sizes, alpha outside (0, 0.5)
    assert!(RealNvp::new(&root.pp("a"), cfg([1, 28, 28], 4, 1, 4)).is_err());
    assert!(RealNvp::new(&root.pp("b"), cfg([1, 6, 6], 0, 1, 4)).is_err());
    assert!(RealNvp::new(&root.pp("c"), cfg([1, 6, 6], 1, 0, 4)).is_err());
    assert!(RealNvp::new(&root.pp("d"), cfg([1, 6, 6], 1, 1, 0)).is_err());
    assert!(RealNvp::new(&root.pp("e"), cfg([0, 6, 6], 1, 1, 4)).is_err());
    let mut c = cfg([1, 4, 4], 2, 1, 4);
    c.alpha = 0.5;
    assert!(RealNvp::new(&root.pp("f"), c).is_err());
    let flow = RealNvp::new(&root.pp("g"), cfg([1, 4, 4], 2, 1, 4)).unwrap();
    let t = |s: &[usize]| Tensor::zeros(&dev, s).unwrap();
    assert!(flow.forward(&t(&[2, 1, 4, 5])).is_err());
    assert!(flow.forward(&t(&[2, 2, 4, 4])).is_err());
    assert!(flow.forward(&t(&[16])).is_err());
    assert!(flow.forward(&t(&[0, 1, 4, 4])).is_err());
    assert!(flow.inverse(&t(&[2, 15])).is_err());
    assert!(flow.inverse(&t(&[2, 1, 4, 4])).is_err());
    assert!(flow.bits_per_dim(&t(&[2, 16]), 0, 0).is_err());
    assert!(flow.logit(&t(&[1, 1, 3, 4])).is_err());
    assert!(flow.to_pixels(&t(&[1, 1, 3, 4])).is_err());
    assert!(flow.sample(0, 1.0, 0).is_err());
    assert!(flow.sample(2, -1.0, 0).is_err());
    assert!(flow.sample(2, f32::NAN, 0).is_err());
}
