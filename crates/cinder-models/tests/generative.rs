//! Representation and generative models: tiny training runs on a few hundred Fashion-MNIST
//! images whose loss moves the right way, the VAE's KL term against its closed form, the
//! IWAE bound against the ELBO, WGAN-GP's penalty on a 2-D toy problem, the pair sampler's
//! ratio, k-NN accuracy, and errors for bad input.

use cinder_autograd::{Tensor, grad, no_grad};
use cinder_data::mnist::{self, Split};
use cinder_device::Device;
use cinder_models::gan::{GanStep, clip_parameters, dcgan_init};
use cinder_models::{
    AeArch, AeConfig, Autoencoder, Discriminator, GanArch, GanConfig, GanTrainer, Generator,
    Likelihood, Noise, Objective, PairSampler, Regularizer, Siamese, Vae, VaeArch, VaeConfig,
    knn_accuracy,
};
use cinder_nn::loss::{GanLoss, Penalty, gradient_penalty};
use cinder_nn::optim::{Adam, AdamConfig, Optimizer};
use cinder_nn::{Linear, Module, VarStore};

const IMG: [usize; 3] = [1, 28, 28];

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

/// The first `n` Fashion-MNIST training images in `[0, 1]` and their labels.
fn fashion(n: usize) -> (Vec<f32>, Vec<u8>) {
    let d = mnist::load(&mnist::data_dir(None), Split::Train)
        .expect("Fashion-MNIST (scripts/setup.sh)")
        .take(n);
    (
        d.images().iter().map(|&p| p as f32 / 255.0).collect(),
        d.labels().to_vec(),
    )
}

fn batches(dev: &Device, pix: &[f32], bs: usize) -> Vec<Tensor> {
    pix.chunks(bs * 784)
        .map(|c| Tensor::from_slice(dev, c, &[c.len() / 784, 1, 28, 28]).unwrap())
        .collect()
}

fn adam(vs: &VarStore, lr: f32) -> Adam {
    Adam::new(
        vs.parameters(),
        AdamConfig {
            lr,
            ..Default::default()
        },
    )
    .unwrap()
}

fn adam_betas(vs: &VarStore, lr: f32) -> Adam {
    Adam::new(
        vs.parameters(),
        AdamConfig {
            lr,
            betas: (0.5, 0.999),
            ..Default::default()
        },
    )
    .unwrap()
}

/// Mean of a loss over every batch in evaluation (no graph).
fn eval_mean(bs: &[Tensor], f: impl Fn(&Tensor) -> f32) -> f32 {
    bs.iter().map(&f).sum::<f32>() / bs.len() as f32
}

#[test]
fn mlp_autoencoder_tied_denoising_sparse_reconstruction_error_falls() {
    let dev = dev();
    let (pix, _) = fashion(256);
    let bs = batches(&dev, &pix, 64);
    let vs = VarStore::new(&dev, 0);
    let cfg = AeConfig {
        arch: AeArch::Mlp { hidden: vec![64] },
        image: IMG,
        code: 16,
        tied: true,
        noise: Noise::Gaussian { std: 0.2 },
        sparsity: 1e-3,
    };
    let ae = Autoencoder::new(&vs.root(), cfg.clone()).unwrap();
    // tied: the decoder owns only its biases (784 + 64)
    let tied_params = vs.num_parameters();
    assert_eq!(tied_params, (784 * 64 + 64) + (64 * 16 + 16) + 64 + 784);
    let vs2 = VarStore::new(&dev, 0);
    Autoencoder::new(&vs2.root(), AeConfig { tied: false, ..cfg }).unwrap();
    assert_eq!(vs2.num_parameters(), tied_params + 784 * 64 + 64 * 16);

    let recon = |x: &Tensor| {
        no_grad(|| {
            let y = ae.reconstruct(x, false).unwrap();
            y.sub(x)
                .unwrap()
                .square()
                .unwrap()
                .mean_all()
                .unwrap()
                .item()
                .unwrap()
        })
    };
    let before = eval_mean(&bs, recon);
    let mut opt = adam(&vs, 1e-2);
    let mut step = 0;
    for _ in 0..8 {
        for x in &bs {
            let l = ae.loss(x, 7, step).unwrap();
            opt.zero_grad();
            l.total.backward().unwrap();
            opt.step().unwrap();
            step += 1;
        }
    }
    let after = eval_mean(&bs, recon);
    println!("tied DAE: clean reconstruction MSE {before:.5} -> {after:.5}");
    assert!(after < 0.6 * before, "MSE {before} -> {after}");
    // the denoising input is the clean one plus N(0, 0.2^2)
    let noisy = Noise::Gaussian { std: 0.2 }.apply(&bs[0], 99, 0).unwrap();
    let d2 = noisy
        .sub(&bs[0])
        .unwrap()
        .square()
        .unwrap()
        .mean_all()
        .unwrap()
        .item()
        .unwrap();
    assert!((d2 - 0.04).abs() < 0.002, "{d2}");
    let l = no_grad(|| ae.loss(&bs[0], 99, 0).unwrap());
    assert!(l.l1.item().unwrap() > 0.0);
}

#[test]
fn conv_autoencoder_untied_and_tied_learn_and_masking_noise_zeroes_pixels() {
    let dev = dev();
    let (pix, _) = fashion(64);
    let bs = batches(&dev, &pix, 32);
    for tied in [false, true] {
        let vs = VarStore::new(&dev, 1);
        let ae = Autoencoder::new(
            &vs.root(),
            AeConfig {
                arch: AeArch::Conv { width: 4 },
                image: IMG,
                code: 8,
                tied,
                noise: Noise::None,
                sparsity: 0.0,
            },
        )
        .unwrap();
        let recon = |x: &Tensor| no_grad(|| ae.loss(x, 0, 0).unwrap().recon.item().unwrap());
        let before = eval_mean(&bs, recon);
        let mut opt = adam(&vs, 1e-2);
        for s in 0..12 {
            let l = ae.loss(&bs[s % 2], 0, s as u64).unwrap();
            opt.zero_grad();
            l.total.backward().unwrap();
            opt.step().unwrap();
        }
        let after = eval_mean(&bs, recon);
        println!("conv AE (tied {tied}): MSE {before:.5} -> {after:.5}");
        assert!(after < 0.8 * before, "tied {tied}: {before} -> {after}");
    }
    // masking noise with p = 0.5 zeroes about half the pixels and keeps the others
    let ones = Tensor::ones(&dev, &[4000]).unwrap();
    let m = Noise::Masking { p: 0.5 }.apply(&ones, 3, 0).unwrap();
    let v = m.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|&x| x == 0.0 || x == 1.0));
    let kept = v.iter().filter(|&&x| x == 1.0).count() as f32 / 4000.0;
    assert!((kept - 0.5).abs() < 0.03, "kept {kept}");
}

#[test]
fn vae_kl_term_matches_its_closed_form_and_elbo_adds_beta_kl() {
    let dev = dev();
    let (pix, _) = fashion(8);
    let x = Tensor::from_slice(&dev, &pix, &[8, 1, 28, 28]).unwrap();
    let vs = VarStore::new(&dev, 2);
    let beta = 4.0;
    let vae = Vae::new(
        &vs.root(),
        VaeConfig {
            arch: VaeArch::Mlp { hidden: 32 },
            image: IMG,
            latent: 5,
            likelihood: Likelihood::Bernoulli,
            beta,
        },
    )
    .unwrap();
    let e = vae.elbo(&x, 1, 0).unwrap();
    let (mu, lv) = vae.encode(&x, true).unwrap();
    let (mu, lv) = (mu.to_vec::<f32>().unwrap(), lv.to_vec::<f32>().unwrap());
    // KL(N(mu, s^2) || N(0, 1)) = 0.5 sum (mu^2 + s^2 - 1 - ln s^2), averaged over 8
    let mut kl = 0f64;
    for (m, l) in mu.iter().zip(&lv) {
        let (m, l) = (*m as f64, *l as f64);
        kl += 0.5 * (m * m + l.exp() - 1.0 - l);
    }
    kl /= 8.0;
    let got = e.kl.item().unwrap() as f64;
    println!("KL {got} vs closed form {kl}");
    assert!((got - kl).abs() < 1e-4 * kl.abs().max(1.0), "{got} vs {kl}");
    let (loss, rec) = (e.loss.item().unwrap(), e.recon.item().unwrap());
    assert!((loss - (rec + beta * got as f32)).abs() < 1e-3 * loss.abs());
    // Bernoulli reconstruction: sum over pixels of the BCE, a few hundred nats per image
    assert!(rec > 100.0 && rec < 2000.0, "recon {rec}");
    // reparameterization is differentiable: the loss reaches the encoder's weights
    let w = vs.get("enc.mu.weight").unwrap();
    let g = grad(&[&e.loss], &[&w], false).unwrap().remove(0);
    let gs = g.to_vec::<f32>().unwrap();
    assert!(gs.iter().any(|&v| v != 0.0) && gs.iter().all(|v| v.is_finite()));
}

#[test]
fn mlp_vae_negative_elbo_falls_and_iwae_is_at_least_the_elbo() {
    let dev = dev();
    let (pix, _) = fashion(256);
    let bs = batches(&dev, &pix, 64);
    let vs = VarStore::new(&dev, 3);
    let vae = Vae::new(
        &vs.root(),
        VaeConfig {
            arch: VaeArch::Mlp { hidden: 64 },
            image: IMG,
            latent: 8,
            likelihood: Likelihood::Bernoulli,
            beta: 1.0,
        },
    )
    .unwrap();
    let nelbo = |x: &Tensor| no_grad(|| vae.elbo(x, 5, 0).unwrap().loss.item().unwrap());
    let before = eval_mean(&bs, nelbo);
    let mut opt = adam(&vs, 3e-3);
    let mut step = 100;
    for _ in 0..4 {
        for x in &bs {
            let e = vae.elbo(x, 11, step).unwrap();
            opt.zero_grad();
            e.loss.backward().unwrap();
            opt.step().unwrap();
            step += 1;
        }
    }
    let after = eval_mean(&bs, nelbo);
    println!("VAE negative ELBO {before:.2} -> {after:.2} nats");
    assert!(after < before - 50.0, "{before} -> {after}");

    // same batch: the ELBO averaged over 8 draws of z, and the K = 64 IWAE estimate
    let x = &bs[0];
    let elbo: f32 = (0..8)
        .map(|s| -no_grad(|| vae.elbo(x, 40 + s, 0).unwrap().loss.item().unwrap()))
        .sum::<f32>()
        / 8.0;
    let iw = no_grad(|| vae.iwae_log_px(x, 64, 9, 0).unwrap());
    assert_eq!(iw.shape(), [64]);
    let iw = iw.mean_all().unwrap().item().unwrap();
    let iw1 = no_grad(|| vae.iwae_log_px(x, 1, 9, 0).unwrap())
        .mean_all()
        .unwrap()
        .item()
        .unwrap();
    println!("ELBO {elbo:.2}, IWAE K=1 {iw1:.2}, K=64 {iw:.2}");
    assert!(iw >= elbo, "IWAE {iw} < ELBO {elbo}");
    assert!(iw > iw1, "K=64 {iw} not above K=1 {iw1}");
    // with K = 1 the estimate is a one-sample ELBO (Monte Carlo KL): close to the ELBO
    assert!((iw1 - elbo).abs() < 0.05 * elbo.abs(), "{iw1} vs {elbo}");
}

#[test]
fn conv_vae_gaussian_samples_reconstructions_and_interpolation_have_the_right_shapes() {
    let dev = dev();
    let (pix, _) = fashion(16);
    let x = Tensor::from_slice(&dev, &pix, &[16, 1, 28, 28]).unwrap();
    let vs = VarStore::new(&dev, 4);
    let vae = Vae::new(
        &vs.root(),
        VaeConfig {
            arch: VaeArch::Conv { width: 4 },
            image: IMG,
            latent: 2,
            likelihood: Likelihood::Gaussian { sigma: 0.1 },
            beta: 1.0,
        },
    )
    .unwrap();
    let mut opt = adam(&vs, 5e-3);
    let first = vae.elbo(&x, 0, 0).unwrap().loss.item().unwrap();
    let mut last = first;
    for s in 0..8 {
        let e = vae.elbo(&x, 0, s).unwrap();
        opt.zero_grad();
        e.loss.backward().unwrap();
        opt.step().unwrap();
        last = e.loss.item().unwrap();
    }
    println!("conv Gaussian VAE loss {first:.1} -> {last:.1}");
    assert!(last < first, "{first} -> {last}");
    no_grad(|| {
        let s = vae.sample(6, 1, 0).unwrap();
        assert_eq!(s.shape(), [6, 1, 28, 28]);
        let v = s.to_vec::<f32>().unwrap();
        assert!(v.iter().all(|&p| p > 0.0 && p < 1.0));
        assert_eq!(vae.reconstruct(&x).unwrap().shape(), [16, 1, 28, 28]);
        let a = x.narrow(0, 0, 1).unwrap();
        let b = x.narrow(0, 1, 1).unwrap();
        let strip = vae.interpolate(&a, &b, 7).unwrap();
        assert_eq!(strip.shape(), [7, 1, 28, 28]);
        // the ends of the strip are the reconstructions of a and b
        let ra = vae.reconstruct(&a).unwrap().to_vec::<f32>().unwrap();
        let sv = strip.to_vec::<f32>().unwrap();
        let diff = ra
            .iter()
            .zip(&sv[..784])
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "{diff}");
    });
}

#[test]
fn mlp_gan_samples_move_toward_the_data_mean_and_discriminator_learns() {
    let dev = dev();
    let (pix, _) = fashion(256);
    // pixels in [-1, 1]
    let pix: Vec<f32> = pix.iter().map(|p| 2.0 * p - 1.0).collect();
    // the data's mean image
    let mut data_mean = vec![0f32; 784];
    for img in pix.chunks(784) {
        for (m, p) in data_mean.iter_mut().zip(img) {
            *m += p / 256.0;
        }
    }
    let bs = batches(&dev, &pix, 64);
    let cfg = GanConfig {
        arch: GanArch::Mlp { hidden: 64 },
        image: IMG,
        latent: 16,
        classes: None,
        embed: 0,
    };
    let (gvs, dvs) = (VarStore::new(&dev, 5), VarStore::new(&dev, 6));
    let g = Generator::new(&gvs.root(), cfg.clone()).unwrap();
    let d = Discriminator::new(&dvs.root(), cfg).unwrap();
    let (mut go, mut dopt) = (adam_betas(&gvs, 2e-3), adam_betas(&dvs, 5e-4));
    let tr = GanTrainer {
        objective: Objective::parse("nonsaturating").unwrap(),
        n_critic: 1,
        seed: 1,
    };
    // squared distance between the mean generated image and the data's mean image
    let gap = || {
        no_grad(|| {
            let z = Tensor::rand_normal(&dev, &[128, 16], 0.0, 1.0, 77, 0).unwrap();
            let m = g
                .forward(&z, None, false)
                .unwrap()
                .mean_axis(0, false)
                .unwrap();
            let m = m.to_vec::<f32>().unwrap();
            m.iter()
                .zip(&data_mean)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                / 784.0
        })
    };
    let gap0 = gap();
    let mut d_losses = vec![];
    for s in 0..80u64 {
        let st: GanStep = tr
            .step(&g, &d, &mut go, &mut dopt, &bs[s as usize % 4], None, s)
            .unwrap();
        assert!(st.g_loss.is_some() && st.penalty.is_none());
        d_losses.push(st.d_loss.item().unwrap());
    }
    let gap1 = gap();
    println!(
        "GAN: mean image squared distance {gap0:.3} -> {gap1:.3}; D loss {:.3} -> {:.3}",
        d_losses[0],
        d_losses.last().unwrap()
    );
    // D starts near ln 4 (it cannot tell) and learns to tell
    assert!((d_losses[0] - 4f32.ln()).abs() < 0.2, "{}", d_losses[0]);
    assert!(d_losses.iter().cloned().fold(f32::MAX, f32::min) < 1.2);
    assert!(gap1 < 0.7 * gap0, "{gap0} -> {gap1}");
}

#[test]
fn conditional_dcgan_init_and_one_step_of_every_objective() {
    let dev = dev();
    let (pix, labels) = fashion(16);
    let pix: Vec<f32> = pix.iter().map(|p| 2.0 * p - 1.0).collect();
    let real = Tensor::from_slice(&dev, &pix, &[16, 1, 28, 28]).unwrap();
    let lab: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let lab = Tensor::from_slice(&dev, &lab, &[16]).unwrap();
    let cfg = GanConfig {
        arch: GanArch::Dcgan { width: 4 },
        image: IMG,
        latent: 8,
        classes: Some(10),
        embed: 4,
    };
    for name in [
        "minimax",
        "nonsaturating",
        "wgan",
        "wgan-gp",
        "lsgan",
        "hinge",
        "dragan",
    ] {
        let (gvs, dvs) = (VarStore::new(&dev, 7), VarStore::new(&dev, 8));
        let g = Generator::new(&gvs.root(), cfg.clone()).unwrap();
        let d = Discriminator::new(&dvs.root(), cfg.clone()).unwrap();
        dcgan_init(&gvs, 1).unwrap();
        dcgan_init(&dvs, 2).unwrap();
        if name == "minimax" {
            let w = gvs.get("deconv1.weight").unwrap().to_vec::<f32>().unwrap();
            let n = w.len() as f32;
            let m = w.iter().sum::<f32>() / n;
            let sd = (w.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / n).sqrt();
            assert!(m.abs() < 0.003 && (sd - 0.02).abs() < 0.002, "{m} {sd}");
            let b = gvs.get("bn1.weight").unwrap().to_vec::<f32>().unwrap();
            assert!(b.iter().all(|v| (v - 1.0).abs() < 0.1));
            assert!(
                gvs.get("fc0.bias")
                    .unwrap()
                    .to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .all(|&v| v == 0.0)
            );
        }
        let obj = Objective::parse(name).unwrap();
        let (mut go, mut dopt) = (adam_betas(&gvs, 1e-3), adam_betas(&dvs, 1e-3));
        let tr = GanTrainer {
            objective: obj,
            n_critic: 2,
            seed: 3,
        };
        let s0 = tr
            .step(&g, &d, &mut go, &mut dopt, &real, Some(&lab), 0)
            .unwrap();
        assert!(
            s0.g_loss.is_none(),
            "{name}: G stepped on a critic-only step"
        );
        let s1 = tr
            .step(&g, &d, &mut go, &mut dopt, &real, Some(&lab), 1)
            .unwrap();
        let gl = s1.g_loss.expect("G steps every n_critic").item().unwrap();
        assert!(
            gl.is_finite() && s1.d_loss.item().unwrap().is_finite(),
            "{name}"
        );
        assert_eq!(
            s1.penalty.is_some(),
            name == "wgan-gp" || name == "dragan",
            "{name}"
        );
        if let Regularizer::Clip(c) = obj.reg {
            for p in dvs.parameters() {
                let v = p.to_vec::<f32>().unwrap();
                assert!(v.iter().all(|x| x.abs() <= c), "{name}: unclipped");
            }
        }
        // labels are required and checked
        let z = Tensor::rand_normal(&dev, &[16, 8], 0.0, 1.0, 0, 0).unwrap();
        assert!(g.forward(&z, None, false).is_err());
        let out = no_grad(|| g.forward(&z, Some(&lab), false).unwrap());
        assert_eq!(out.shape(), [16, 1, 28, 28]);
    }
    assert!(Objective::parse("wasserstein").is_err());
    assert!(
        Objective::parse("began").is_err(),
        "BEGAN has its own trainer"
    );
}

#[test]
fn wgan_gp_penalty_drives_the_critics_input_gradient_norm_toward_one() {
    let dev = dev();
    let n = 256;
    // real: N((2, 2), 0.3^2); fake: N((-1, 0), 0.3^2), fixed
    let real = Tensor::rand_normal(&dev, &[n, 2], 0.0, 0.3, 1, 0)
        .unwrap()
        .add(&Tensor::from_slice(&dev, &[2f32, 2.0], &[2]).unwrap())
        .unwrap();
    let fake = Tensor::rand_normal(&dev, &[n, 2], 0.0, 0.3, 2, 0)
        .unwrap()
        .add(&Tensor::from_slice(&dev, &[-1f32, 0.0], &[2]).unwrap())
        .unwrap();
    // mean input-gradient norm of the critic on the interpolates (the penalty's points)
    let run = |lambda: f32| -> (f32, f32) {
        let vs = VarStore::new(&dev, 9);
        let l1 = Linear::new(&vs.pp("fc1"), 2, 64, true).unwrap();
        let l2 = Linear::new(&vs.pp("fc2"), 64, 64, true).unwrap();
        let l3 = Linear::new(&vs.pp("fc3"), 64, 1, true).unwrap();
        let critic = |x: &Tensor| -> cinder_device::Result<Tensor> {
            let h = l1.forward(x)?.tanh()?;
            let h = l2.forward(&h)?.tanh()?;
            l3.forward(&h)
        };
        let norm = || -> f32 {
            let e = Tensor::rand_uniform(&dev, &[n, 1], 0.0, 1.0, 50, 0).unwrap();
            let xh = real
                .mul(&e)
                .unwrap()
                .add(&fake.mul(&e.rsub_scalar(1.0).unwrap()).unwrap())
                .unwrap()
                .detach()
                .requires_grad_(true)
                .unwrap();
            let out = critic(&xh).unwrap().sum_all().unwrap();
            let g = grad(&[&out], &[&xh], false).unwrap().remove(0);
            let v = g.to_vec::<f32>().unwrap();
            v.chunks(2)
                .map(|r| (r[0] * r[0] + r[1] * r[1]).sqrt())
                .sum::<f32>()
                / n as f32
        };
        let before = norm();
        let mut opt = adam(&vs, 5e-3);
        for s in 0..150 {
            let loss = GanLoss::Wgan
                .d_loss(&critic(&real).unwrap(), &critic(&fake).unwrap())
                .unwrap();
            let loss = if lambda > 0.0 {
                let gp = gradient_penalty(critic, &real, &fake, Penalty::WganGp, 3, s).unwrap();
                loss.add(&gp.mul_scalar(lambda).unwrap()).unwrap()
            } else {
                loss
            };
            opt.zero_grad();
            loss.backward().unwrap();
            opt.step().unwrap();
        }
        (before, norm())
    };
    let (b0, gp) = run(10.0);
    let (_, free) = run(0.0);
    println!("critic input-gradient norm: start {b0:.3}, WGAN-GP {gp:.3}, unpenalized {free:.3}");
    // the Wasserstein term pulls the slope up, the penalty back to 1: the optimum of
    // `-s + 10 (s - 1)^2` is s = 1.05; Adam's noise leaves it within 0.25
    assert!((gp - 1.0).abs() < 0.25, "WGAN-GP norm {gp}");
    assert!((gp - 1.0).abs() < (b0 - 1.0).abs());
    // without the penalty the critic's slope keeps growing far past 1
    assert!(free > 2.0, "unpenalized norm {free}");
    // weight clipping bounds the parameters
    let vs = VarStore::new(&dev, 10);
    Linear::new(&vs.root(), 2, 8, true).unwrap();
    clip_parameters(&vs.parameters(), 0.01).unwrap();
    for p in vs.parameters() {
        assert!(p.to_vec::<f32>().unwrap().iter().all(|v| v.abs() <= 0.01));
    }
    assert!(clip_parameters(&vs.parameters(), -1.0).is_err());
}

#[test]
fn siamese_pair_sampler_keeps_its_ratio_and_contrastive_training_separates_classes() {
    let dev = dev();
    let (pix, labels) = fashion(256);
    let mut ps = PairSampler::new(&labels, 1, 3, 0).unwrap();
    let pairs = ps.sample(400);
    assert_eq!(pairs.iter().filter(|p| p.similar).count(), 100);
    for p in &pairs {
        assert_eq!(labels[p.a] == labels[p.b], p.similar);
        assert_ne!(p.a, p.b);
    }
    // the order is shuffled: similar pairs are not all first
    assert!(pairs[..100].iter().any(|p| !p.similar));

    let vs = VarStore::new(&dev, 11);
    let net = Siamese::new(&vs.root(), IMG, 4, 2).unwrap();
    let mut opt = adam(&vs, 3e-3);
    let mut ps = PairSampler::new(&labels, 1, 1, 1).unwrap();
    let make = |pairs: &[cinder_models::siamese::Pair]| {
        let pick = |f: &dyn Fn(&cinder_models::siamese::Pair) -> usize| {
            let v: Vec<f32> = pairs
                .iter()
                .flat_map(|p| pix[f(p) * 784..(f(p) + 1) * 784].iter().copied())
                .collect();
            Tensor::from_slice(&dev, &v, &[pairs.len(), 1, 28, 28]).unwrap()
        };
        let y: Vec<f32> = pairs.iter().map(|p| p.similar as u8 as f32).collect();
        (
            pick(&|p| p.a),
            pick(&|p| p.b),
            Tensor::from_slice(&dev, &y, &[pairs.len()]).unwrap(),
        )
    };
    let held = make(&PairSampler::new(&labels, 1, 1, 99).unwrap().sample(128));
    let eval = || {
        no_grad(|| {
            net.pair_loss(&held.0, &held.1, &held.2, 1.0, false)
                .unwrap()
                .item()
                .unwrap()
        })
    };
    let before = eval();
    for _ in 0..20 {
        let (a, b, y) = make(&ps.sample(64));
        let l = net.pair_loss(&a, &b, &y, 1.0, true).unwrap();
        opt.zero_grad();
        l.backward().unwrap();
        opt.step().unwrap();
    }
    let after = eval();
    println!("Siamese contrastive loss on held pairs {before:.4} -> {after:.4}");
    assert!(after < 0.8 * before, "{before} -> {after}");
}

#[test]
fn knn_accuracy_counts_majority_votes() {
    // two clusters on a line; the query at 0.9 has neighbours {0, 1, 1.2}: labels 0, 1, 1
    let r = [0.0f32, 0.1, 0.2, 1.0, 1.2, 1.4];
    let rl = [0u8, 0, 0, 1, 1, 1];
    let q = [0.05f32, 0.9, 1.3, 0.3];
    let ql = [0u8, 1, 1, 1];
    assert_eq!(knn_accuracy(&r, &rl, &q, &ql, 1, 3).unwrap(), 0.75);
    assert_eq!(knn_accuracy(&r, &rl, &q, &ql, 1, 1).unwrap(), 0.75);
    assert!(knn_accuracy(&r, &rl, &q, &ql, 1, 0).is_err());
    assert!(knn_accuracy(&r, &rl[..5], &q, &ql, 1, 3).is_err());
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dev = dev();
    let vs = VarStore::new(&dev, 12);
    let root = vs.root();
    let ae = |arch, code| {
        Autoencoder::new(
            &root.pp(&format!("ae{code}")),
            AeConfig {
                arch,
                image: IMG,
                code,
                tied: false,
                noise: Noise::None,
                sparsity: 0.0,
            },
        )
    };
    assert!(ae(AeArch::Mlp { hidden: vec![] }, 0).is_err());
    assert!(
        Autoencoder::new(
            &root.pp("odd"),
            AeConfig {
                arch: AeArch::Conv { width: 4 },
                image: [1, 30, 30],
                code: 4,
                tied: true,
                noise: Noise::None,
                sparsity: 0.0,
            }
        )
        .is_err()
    );
    let a = ae(AeArch::Mlp { hidden: vec![8] }, 4).unwrap();
    let wrong = Tensor::zeros(&dev, &[2, 1, 14, 14]).unwrap();
    assert!(a.encode(&wrong, false).is_err());
    assert!(
        a.decode(&Tensor::zeros(&dev, &[2, 5]).unwrap(), false)
            .is_err()
    );
    assert!(Noise::Masking { p: 1.5 }.apply(&wrong, 0, 0).is_err());
    let vcfg = VaeConfig {
        arch: VaeArch::Mlp { hidden: 8 },
        image: IMG,
        latent: 2,
        likelihood: Likelihood::Gaussian { sigma: 0.0 },
        beta: 1.0,
    };
    assert!(Vae::new(&root.pp("v0"), vcfg.clone()).is_err());
    let v = Vae::new(
        &root.pp("v1"),
        VaeConfig {
            likelihood: Likelihood::Bernoulli,
            ..vcfg
        },
    )
    .unwrap();
    let x = Tensor::zeros(&dev, &[2, 1, 28, 28]).unwrap();
    assert!(v.iwae_log_px(&x, 0, 0, 0).is_err());
    assert!(v.sample(0, 0, 0).is_err());
    assert!(
        v.interpolate(&x.narrow(0, 0, 1).unwrap(), &x.narrow(0, 1, 1).unwrap(), 1)
            .is_err()
    );
    assert!(v.elbo(&wrong, 0, 0).is_err());
    let gcfg = GanConfig {
        arch: GanArch::Dcgan { width: 4 },
        image: [1, 30, 30],
        latent: 4,
        classes: None,
        embed: 0,
    };
    assert!(Generator::new(&root.pp("g"), gcfg.clone()).is_err());
    let gcfg = GanConfig { image: IMG, ..gcfg };
    let g = Generator::new(&root.pp("g2"), gcfg.clone()).unwrap();
    let lab = Tensor::from_slice(&dev, &[0u32, 1], &[2]).unwrap();
    let z = Tensor::zeros(&dev, &[2, 4]).unwrap();
    assert!(g.forward(&z, Some(&lab), false).is_err());
    assert!(
        g.forward(&Tensor::zeros(&dev, &[2, 3]).unwrap(), None, false)
            .is_err()
    );
    assert!(PairSampler::new(&[0, 1, 2], 1, 1, 0).is_err());
    assert!(PairSampler::new(&[3, 3, 3], 1, 1, 0).is_err());
    assert!(PairSampler::new(&[0, 1], 0, 0, 0).is_err());
    assert!(Siamese::new(&root.pp("s"), [1, 30, 30], 4, 2).is_err());
}
