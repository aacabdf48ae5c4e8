//! BEGAN, DRAGAN and InfoGAN: BEGAN's `k_t` and convergence measure against their
//! formulas on the step's own values, its autoencoder learning to reconstruct real data;
//! InfoGAN's code layout, its Q head learning the categorical code, cluster purity; errors
//! for bad input. (DRAGAN's one step is in `generative.rs` with the other objectives.)

use cinder_autograd::{Tensor, no_grad};
use cinder_data::mnist::{self, Split};
use cinder_device::Device;
use cinder_models::{
    BeganDiscriminator, BeganTrainer, Discriminator, GanArch, GanConfig, Generator, InfoGanConfig,
    InfoGanTrainer, QHead, purity,
};
use cinder_nn::VarStore;
use cinder_nn::loss::GanLoss;
use cinder_nn::optim::{Adam, AdamConfig};

const IMG: [usize; 3] = [1, 28, 28];

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

/// The first `n` Fashion-MNIST training images in `[-1, 1]`, in batches of `bs`, and the
/// labels of each batch.
fn fashion(dev: &Device, n: usize, bs: usize) -> Vec<(Tensor, Tensor)> {
    let d = mnist::load(&mnist::data_dir(None), Split::Train)
        .expect("Fashion-MNIST (scripts/setup.sh)")
        .take(n);
    let pix: Vec<f32> = d.images().iter().map(|&p| p as f32 / 127.5 - 1.0).collect();
    let lab: Vec<u32> = d.labels().iter().map(|&l| l as u32).collect();
    pix.chunks(bs * 784)
        .zip(lab.chunks(bs))
        .map(|(p, l)| {
            (
                Tensor::from_slice(dev, p, &[l.len(), 1, 28, 28]).unwrap(),
                Tensor::from_slice(dev, l, &[l.len()]).unwrap(),
            )
        })
        .collect()
}

fn adam(vs: &VarStore, lr: f32) -> Adam {
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

fn mlp(latent: usize, classes: Option<usize>) -> GanConfig {
    GanConfig {
        arch: GanArch::Mlp { hidden: 64 },
        image: IMG,
        latent,
        classes,
        embed: 8,
    }
}

#[test]
fn began_balance_and_convergence_follow_their_formulas_and_the_autoencoder_learns() {
    let dev = dev();
    let data = fashion(&dev, 256, 64);
    let cfg = mlp(16, None);
    let (gvs, dvs) = (VarStore::new(&dev, 5), VarStore::new(&dev, 6));
    let g = Generator::new(&gvs.root(), cfg.clone()).unwrap();
    let d = BeganDiscriminator::new(&dvs.root(), cfg, 32).unwrap();
    let (mut go, mut dopt) = (adam(&gvs, 1e-3), adam(&dvs, 1e-3));
    // a large lambda_k, so that k moves every step
    let (gamma, lambda_k) = (0.5f32, 0.2f32);
    let mut t = BeganTrainer::new(&dev, gamma, lambda_k, 9).unwrap();
    assert_eq!(t.k().item().unwrap(), 0.0);
    let mut k = 0f32;
    let (mut first_lx, mut last_lx, mut first_m, mut last_m) = (0f32, 0f32, 0f32, 0f32);
    let mut k_moved = false;
    for s in 0..60u64 {
        let (x, _) = &data[s as usize % data.len()];
        let st = t.step(&g, &d, &mut go, &mut dopt, x, None, s).unwrap();
        let (lx, lg) = (st.real_loss.item().unwrap(), st.g_loss.item().unwrap());
        let want_k = (k + lambda_k * (gamma * lx - lg)).clamp(0.0, 1.0);
        let got_k = st.k.item().unwrap();
        assert!(
            (got_k - want_k).abs() < 1e-6,
            "step {s}: k {got_k} vs {want_k}"
        );
        let m = st.convergence.item().unwrap();
        let want_m = lx + (gamma * lx - lg).abs();
        assert!((m - want_m).abs() < 1e-5, "step {s}: M {m} vs {want_m}");
        // the critic's loss used the k before this step's update
        assert!(st.d_loss.item().unwrap() <= lx + 1e-5, "step {s}");
        k_moved |= got_k > 0.0;
        assert_eq!(t.k().item().unwrap(), got_k);
        k = got_k;
        if s == 0 {
            (first_lx, first_m) = (lx, m);
        }
        (last_lx, last_m) = (lx, m);
    }
    println!("BEGAN: L(x) {first_lx:.4} -> {last_lx:.4}, M {first_m:.4} -> {last_m:.4}, k {k:.4}");
    assert!(k_moved, "k never left 0");
    assert!(last_lx < 0.6 * first_lx, "L(x) {first_lx} -> {last_lx}");
    assert!(last_m < first_m, "M {first_m} -> {last_m}");
}

#[test]
fn conditional_began_steps_and_refuses_bad_input() {
    let dev = dev();
    let data = fashion(&dev, 16, 16);
    let (x, y) = &data[0];
    let cfg = GanConfig {
        arch: GanArch::Dcgan { width: 4 },
        ..mlp(8, Some(10))
    };
    let (gvs, dvs) = (VarStore::new(&dev, 1), VarStore::new(&dev, 2));
    let g = Generator::new(&gvs.root(), cfg.clone()).unwrap();
    let d = BeganDiscriminator::new(&dvs.root(), cfg.clone(), 16).unwrap();
    let rec = no_grad(|| d.forward(x, Some(y), false)).unwrap();
    assert_eq!(rec.shape(), [16, 1, 28, 28]);
    // L(v) is the mean absolute reconstruction error
    let (xv, rv) = (x.to_vec::<f32>().unwrap(), rec.to_vec::<f32>().unwrap());
    let want = xv.iter().zip(&rv).map(|(a, b)| (a - b).abs()).sum::<f32>() / xv.len() as f32;
    let got = no_grad(|| d.reconstruction_loss(x, Some(y), false))
        .unwrap()
        .item()
        .unwrap();
    assert!((got - want).abs() < 1e-5 * want.max(1.0), "{got} vs {want}");
    let (mut go, mut dopt) = (adam(&gvs, 1e-3), adam(&dvs, 1e-3));
    let mut t = BeganTrainer::new(&dev, 0.7, 0.001, 3).unwrap();
    let st = t.step(&g, &d, &mut go, &mut dopt, x, Some(y), 0).unwrap();
    assert!(st.d_loss.item().unwrap().is_finite() && st.g_loss.item().unwrap().is_finite());
    // labels required, checked; a mismatched generator; bad gamma, lambda_k, code width
    assert!(d.forward(x, None, false).is_err());
    let short = Tensor::from_slice(&dev, &[1u32, 2], &[2]).unwrap();
    assert!(d.forward(x, Some(&short), false).is_err());
    assert!(t.step(&g, &d, &mut go, &mut dopt, x, None, 1).is_err());
    let other = Generator::new(&VarStore::new(&dev, 3).root(), mlp(8, Some(10))).unwrap();
    assert!(
        t.step(&other, &d, &mut go, &mut dopt, x, Some(y), 1)
            .is_err()
    );
    for (gamma, lk) in [(0.0, 0.001), (1.5, 0.001), (f32::NAN, 0.001), (0.5, -1.0)] {
        assert!(
            BeganTrainer::new(&dev, gamma, lk, 0).is_err(),
            "{gamma} {lk}"
        );
    }
    assert!(BeganDiscriminator::new(&VarStore::new(&dev, 4).root(), cfg, 0).is_err());
}

#[test]
fn infogan_codes_are_laid_out_as_documented() {
    let dev = dev();
    let cfg = InfoGanConfig::default();
    assert_eq!(cfg.latent(), 62 + 10 + 2);
    let c = cfg.sample(&dev, 2000, 11, 0).unwrap();
    let cat = c.categorical.to_vec::<u32>().unwrap();
    let cont = c.continuous.to_vec::<f32>().unwrap();
    let z = c.z.to_vec::<f32>().unwrap();
    assert_eq!(c.z.shape(), [2000, 74]);
    let mut counts = [0usize; 10];
    for (i, &k) in cat.iter().enumerate() {
        assert!(k < 10);
        counts[k as usize] += 1;
        let row = &z[i * 74..(i + 1) * 74];
        for j in 0..10 {
            assert_eq!(row[62 + j], if j == k as usize { 1.0 } else { 0.0 });
        }
        assert_eq!(&row[72..], &cont[2 * i..2 * i + 2]);
    }
    // uniform categories: 200 expected each, sd about 13
    assert!(
        counts.iter().all(|&n| (140..=260).contains(&n)),
        "{counts:?}"
    );
    assert!(cont.iter().all(|v| (-1.0..1.0).contains(v)));
    let mean = cont.iter().sum::<f32>() / cont.len() as f32;
    assert!(mean.abs() < 0.05, "{mean}");
    // misshaped codes and invalid configs
    let n3 = Tensor::zeros(&dev, &[3, 62]).unwrap();
    assert!(cfg.input(&n3, &c.categorical, &c.continuous).is_err());
    let bad = InfoGanConfig {
        categories: 1,
        ..cfg
    };
    assert!(bad.sample(&dev, 4, 0, 0).is_err());
}

#[test]
fn infogan_q_head_learns_the_categorical_code() {
    let dev = dev();
    let data = fashion(&dev, 256, 64);
    let info = InfoGanConfig {
        noise: 16,
        ..Default::default()
    };
    let cfg = mlp(info.latent(), None);
    let (gvs, dvs) = (VarStore::new(&dev, 21), VarStore::new(&dev, 22));
    let g = Generator::new(&gvs.root(), cfg.clone()).unwrap();
    let d = Discriminator::new(&dvs.root(), cfg).unwrap();
    let q = QHead::new(&dvs.root().pp("q"), d.feature_width(), 32, info).unwrap();
    let (mut go, mut dopt) = (adam(&gvs, 1e-3), adam(&dvs, 1e-3));
    let t = InfoGanTrainer {
        loss: GanLoss::NonSaturating,
        config: info,
        seed: 5,
    };
    let mut ces = vec![];
    for s in 0..60u64 {
        let (x, _) = &data[s as usize % data.len()];
        let st = t.step(&g, &d, &q, &mut go, &mut dopt, x, s).unwrap();
        assert!(st.d_loss.item().unwrap().is_finite());
        ces.push(st.categorical_ce.item().unwrap());
    }
    let head = ces[..5].iter().sum::<f32>() / 5.0;
    let tail = ces[55..].iter().sum::<f32>() / 5.0;
    println!("InfoGAN: Q's categorical cross-entropy {head:.3} -> {tail:.3}");
    // it starts near ln 10 = 2.30 (Q cannot tell the codes apart)
    assert!((head - 10f32.ln()).abs() < 0.4, "{head}");
    assert!(tail < 0.5 * head, "{head} -> {tail}");
    // on fresh codes, Q (in evaluation mode) recovers most categories of generated images
    let c = info.sample(&dev, 500, 99, 0).unwrap();
    let f = no_grad(|| d.features(&g.forward(&c.z, None, false)?, None, false)).unwrap();
    let got = q.infer(&f).unwrap().to_vec::<u32>().unwrap();
    let want = c.categorical.to_vec::<u32>().unwrap();
    let acc = got.iter().zip(&want).filter(|(a, b)| a == b).count() as f32 / 500.0;
    println!("InfoGAN: Q recovers {acc:.3} of fresh categorical codes");
    assert!(acc > 0.5, "{acc}");
    // a conditional generator, or one of the wrong width, is refused
    let cond =
        Generator::new(&VarStore::new(&dev, 1).root(), mlp(info.latent(), Some(10))).unwrap();
    assert!(
        t.step(&cond, &d, &q, &mut go, &mut dopt, &data[0].0, 0)
            .is_err()
    );
    let narrow = Generator::new(&VarStore::new(&dev, 1).root(), mlp(8, None)).unwrap();
    assert!(
        t.step(&narrow, &d, &q, &mut go, &mut dopt, &data[0].0, 0)
            .is_err()
    );
}

#[test]
fn purity_counts_each_clusters_majority() {
    // perfect, permuted clusters
    assert_eq!(
        purity(&[2, 2, 0, 0, 1], &[0, 0, 1, 1, 2], 3, 3).unwrap(),
        1.0
    );
    // one cluster: the largest class's share
    assert_eq!(purity(&[0, 0, 0, 0], &[1, 1, 1, 2], 2, 3).unwrap(), 0.75);
    // cluster 0 = {a, a, b}, cluster 1 = {b, c}: (2 + 1) / 5
    let p = purity(&[0, 0, 0, 1, 1], &[0, 0, 1, 1, 2], 2, 3).unwrap();
    assert!((p - 0.6).abs() < 1e-6, "{p}");
    assert!(purity(&[], &[], 2, 2).is_err());
    assert!(purity(&[0], &[0, 1], 2, 2).is_err());
    assert!(purity(&[2], &[0], 2, 2).is_err());
    assert!(purity(&[0], &[5], 2, 2).is_err());
}
