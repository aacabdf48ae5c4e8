//! Domain adaptation and style transfer: DANN's shapes, errors, lambda schedule and
//! reversed domain gradient, and a short run on Fashion-MNIST against its inverted copy;
//! style transfer with a small random-initialized VGG cutting the style loss tenfold.

use std::sync::Arc;

use cinder_autograd::{Tensor, grad};
use cinder_data::mnist::{self, Split};
use cinder_data::{DataLoader, shift};
use cinder_device::Device;
use cinder_models::train::evaluate;
use cinder_models::{Dann, StyleConfig, StyleTransfer, VGG11, Vgg, dann_lambda};
use cinder_nn::VarStore;
use cinder_nn::optim::{Adam, AdamConfig, Optimizer};

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

#[test]
fn dann_lambda_follows_the_paper_schedule() {
    assert_eq!(dann_lambda(0.0, 10.0), 0.0);
    let end = 2.0 / (1.0 + (-10.0f64).exp()) - 1.0;
    assert!((dann_lambda(1.0, 10.0) as f64 - end).abs() < 1e-7);
    assert!((dann_lambda(0.1, 10.0) - 0.462_117_16).abs() < 1e-6);
    // clamped progress, NaN guarded
    assert_eq!(dann_lambda(-1.0, 10.0), 0.0);
    assert_eq!(dann_lambda(2.0, 10.0), dann_lambda(1.0, 10.0));
    assert_eq!(dann_lambda(f64::NAN, 10.0), 0.0);
}

#[test]
fn dann_shapes_errors_and_the_reversed_domain_gradient() {
    let dev = dev();
    let vs = VarStore::new(&dev, 3);
    let net = Dann::new(&vs.root(), [1, 28, 28], 10).unwrap();
    assert!(Dann::new(&vs.pp("small"), [1, 12, 12], 10).is_err());
    assert!(Dann::new(&vs.pp("odd"), [1, 30, 30], 10).is_err());
    let x = Tensor::rand_uniform(&dev, &[4, 1, 28, 28], 0.0, 1.0, 1, 0).unwrap();
    let f = net.features(&x).unwrap();
    assert_eq!(f.shape(), vec![4, 768]);
    assert_eq!(net.classify(&f).unwrap().shape(), vec![4, 10]);
    assert_eq!(net.domain_logits(&f, 0.5).unwrap().shape(), vec![4]);
    assert!(net.domain_logits(&f, f32::NAN).is_err());
    let wrong = Tensor::rand_uniform(&dev, &[2, 1, 32, 32], 0.0, 1.0, 1, 1).unwrap();
    assert!(net.features(&wrong).is_err());

    // the extractor's gradient from the domain head is -lambda times the unreversed one,
    // while the head's own gradient is unchanged
    let conv1 = vs.get("conv1.weight").unwrap();
    let head = vs.get("domain.fc1.weight").unwrap();
    let grads = |lambda: f32| {
        let l = net
            .domain_logits(&net.features(&x).unwrap(), lambda)
            .unwrap();
        let l = l.mul(&l).unwrap().sum_all().unwrap();
        grad(&[&l], &[&conv1, &head], false).unwrap()
    };
    let (plain, rev) = (grads(-1.0), grads(0.7));
    let (p0, r0) = (
        plain[0].to_vec::<f32>().unwrap(),
        rev[0].to_vec::<f32>().unwrap(),
    );
    let scale = p0.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    assert!(scale > 0.0);
    for (p, r) in p0.iter().zip(&r0) {
        assert!((r + 0.7 * p).abs() <= 1e-5 * scale, "{r} vs {}", -0.7 * p);
    }
    assert_eq!(
        plain[1].to_vec::<f32>().unwrap(),
        rev[1].to_vec::<f32>().unwrap()
    );

    // the losses: both terms with lambda, the label term alone without
    let labels = Tensor::from_slice(&dev, &[0u32, 1, 2, 3], &[4]).unwrap();
    let l = net.loss(&x, &labels, &x, Some(0.3)).unwrap();
    let (t, a, b) = (
        l.total.item().unwrap(),
        l.label.item().unwrap(),
        l.domain.item().unwrap(),
    );
    assert!((t - (a + b)).abs() < 1e-5 && b > 0.0);
    let l = net.loss(&x, &labels, &x, None).unwrap();
    assert_eq!(l.domain.item().unwrap(), 0.0);
    assert_eq!(l.total.item().unwrap(), l.label.item().unwrap());
}

#[test]
fn dann_learns_the_source_while_training_against_the_domain_head() {
    let dev = dev();
    let train = mnist::load(&mnist::data_dir(None), Split::Train)
        .expect("Fashion-MNIST (scripts/setup.sh)")
        .take(3000);
    let idx: Vec<usize> = (0..3000).collect();
    let source = train.subset(&idx[..1500]).unwrap();
    let tex = shift::texture(1);
    let target =
        shift::blended_with_texture(&train.subset(&idx[1500..]).unwrap(), &tex, 2).unwrap();
    let vs = VarStore::new(&dev, 4);
    let net = Dann::new(&vs.root(), [1, 28, 28], 10).unwrap();
    let mut opt = Adam::new(
        vs.parameters(),
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let sl = DataLoader::new(&dev, Arc::new(source.clone()), 32)
        .unwrap()
        .shuffle(1);
    let tl = DataLoader::new(&dev, Arc::new(target), 32)
        .unwrap()
        .shuffle(2);
    let steps = sl.num_batches() * 2;
    let mut domain = vec![];
    let mut k = 0;
    for epoch in 0..2 {
        for (s, t) in sl.epoch(epoch).zip(tl.epoch(epoch)) {
            let (s, t) = (s.unwrap(), t.unwrap());
            let lambda = dann_lambda(k as f64 / steps as f64, 10.0);
            let l = net
                .loss(&s.images, &s.labels, &t.images, Some(lambda))
                .unwrap();
            opt.zero_grad();
            l.total.backward().unwrap();
            opt.step().unwrap();
            domain.push(l.domain.item().unwrap());
            k += 1;
        }
    }
    let test = mnist::load(&mnist::data_dir(None), Split::Test)
        .unwrap()
        .take(1000);
    let acc = evaluate(&net, &DataLoader::new(&dev, Arc::new(test), 250).unwrap())
        .unwrap()
        .0
        .accuracy;
    assert!(
        acc > 0.5,
        "source test accuracy {acc} after 2 epochs of 1,500 images"
    );
    // the domain loss stays finite and near log 2's neighbourhood: the head cannot win
    // outright against the reversed extractor (a collapsed head would give 0 or blow up)
    assert!(domain.iter().all(|d| d.is_finite()));
    let last: f32 = domain[domain.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(last > 0.05, "final domain loss {last}");
}

/// A 32x32 grey image: vertical stripes with period 4 (the style) or a disc (the content).
fn picture(dev: &Device, stripes: bool) -> Tensor {
    let v: Vec<f32> = (0..32 * 32)
        .map(|i| {
            let (y, x) = ((i / 32) as f32, (i % 32) as f32);
            if stripes {
                if (i % 32) % 4 < 2 { 0.9 } else { 0.1 }
            } else {
                let r = ((y - 15.5).powi(2) + (x - 15.5).powi(2)).sqrt();
                if r < 10.0 { 0.8 } else { 0.2 }
            }
        })
        .collect();
    Tensor::from_slice(dev, &v, &[1, 1, 32, 32]).unwrap()
}

#[test]
fn style_transfer_with_a_random_vgg_cuts_the_style_loss_tenfold() {
    let dev = dev();
    let vs = VarStore::new(&dev, 5);
    let net = Vgg::new(&vs.root(), VGG11, 1, 10, false, 8).unwrap();
    // VGG-11's ReLUs: 1, 4, 7, 9, ...
    let cfg = StyleConfig {
        content_layers: vec![7],
        style_layers: vec![1, 4, 7],
        content_weight: 1.0,
        style_weight: 1e3,
        normalize: None,
    };
    let (content, style) = (picture(&dev, false), picture(&dev, true));
    assert!(
        StyleTransfer::new(
            &net,
            &content,
            &style,
            StyleConfig {
                style_layers: vec![3],
                ..cfg.clone()
            }
        )
        .is_err()
    );
    assert!(
        StyleTransfer::new(
            &net,
            &content,
            &style,
            StyleConfig {
                content_layers: vec![],
                ..cfg.clone()
            }
        )
        .is_err()
    );
    let st = StyleTransfer::new(&net, &content, &style, cfg).unwrap();
    let mut opt = Adam::new(
        vec![st.image().clone()],
        AdamConfig {
            lr: 0.02,
            ..Default::default()
        },
    )
    .unwrap();
    let first = st.losses().unwrap();
    let (s0, c0) = (first.style.item().unwrap(), first.content.item().unwrap());
    assert_eq!(c0, 0.0, "the image starts at the content image");
    for _ in 0..150 {
        let l = st.losses().unwrap();
        opt.zero_grad();
        l.total.backward().unwrap();
        opt.step().unwrap();
        st.clamp_image().unwrap();
    }
    let last = st.losses().unwrap();
    let s1 = last.style.item().unwrap();
    assert!(s1 < 0.1 * s0, "style loss {s0} -> {s1}");
    let px = st.image().to_vec::<f32>().unwrap();
    assert!(px.iter().all(|p| (0.0..=1.0).contains(p)));
}
