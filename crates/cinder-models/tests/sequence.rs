//! Sequence models: the row-by-row LSTM and a small Vision Transformer learn Fashion-MNIST
//! from 2,000 images in one epoch; both character language models learn a periodic text;
//! the ViT's names, shapes and class-token attention.

use std::sync::Arc;

use cinder_autograd::Tensor;
use cinder_data::mnist::{self, Split};
use cinder_data::{DataLoader, Transform};
use cinder_device::Device;
use cinder_models::train::{evaluate, train_epoch};
use cinder_models::{CharArch, CharLm, CharLmConfig, RowLstm, VisionTransformer, VitConfig};
use cinder_nn::loss::{CrossEntropy, cross_entropy};
use cinder_nn::optim::{Adam, AdamConfig, Optimizer};
use cinder_nn::{ModuleT, VarStore};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
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

/// Test accuracy on 1,000 images after one epoch on 2,000.
fn one_epoch(model: &dyn ModuleT, vs: &VarStore, batch: usize, lr: f32) -> f32 {
    let d = vs.device().clone();
    let dir = mnist::data_dir(None);
    let train = mnist::load(&dir, Split::Train)
        .expect("Fashion-MNIST (scripts/setup.sh)")
        .take(2000);
    let test = mnist::load(&dir, Split::Test).unwrap().take(1000);
    let norm = Transform::Normalize {
        mean: vec![0.286],
        std: vec![0.353],
    };
    let tl = DataLoader::new(&d, Arc::new(train), batch)
        .unwrap()
        .shuffle(0)
        .transforms(vec![norm.clone()]);
    let el = DataLoader::new(&d, Arc::new(test), 250)
        .unwrap()
        .transforms(vec![norm]);
    let mut opt = adam(vs, lr);
    train_epoch(model, &mut opt, &tl, 0, 0, |_, _| {}).unwrap();
    evaluate(model, &el).unwrap().0.accuracy
}

#[test]
fn row_lstm_learns_fashion_mnist_from_2000_images() {
    let _s = serial();
    let vs = VarStore::new(&dev(), 0);
    let m = RowLstm::new(&vs.root(), 28, 64, 1, 0.0, 10, 0).unwrap();
    assert!(vs.get("lstm.weight_ih_l0").is_some() && vs.get("head.bias").is_some());
    let acc = one_epoch(&m, &vs, 16, 1e-2);
    println!("RowLstm (64 units), 2,000 images, 1 epoch: test accuracy {acc:.4}");
    // 62.4% on lavapipe (2-core AMD EPYC); chance is 10%.
    assert!(acc > 0.55, "test accuracy {acc}");
}

#[test]
fn vit_learns_fashion_mnist_from_2000_images() {
    let _s = serial();
    let vs = VarStore::new(&dev(), 1);
    let cfg = VitConfig {
        dim: 32,
        depth: 2,
        heads: 2,
        mlp_dim: 64,
        ..VitConfig::mnist()
    };
    let m = VisionTransformer::new(&vs.root(), cfg).unwrap();
    for name in [
        "cls_token",
        "pos_embed.weight",
        "encoder.layers.1.self_attn.in_proj_weight",
        "encoder.layers.0.linear2.bias",
        "norm.weight",
        "head.weight",
    ] {
        assert!(vs.get(name).is_some(), "{name}");
    }
    assert!(VisionTransformer::new(&vs.pp("bad"), VitConfig { patch: 5, ..cfg }).is_err());
    let acc = one_epoch(&m, &vs, 32, 2e-3);
    println!("ViT (width 32, 2 layers), 2,000 images, 1 epoch: test accuracy {acc:.4}");
    // 61.5% on lavapipe (2-core AMD EPYC); chance is 10%.
    assert!(acc > 0.50, "test accuracy {acc}");
    let x = Tensor::rand_normal(&dev(), &[3, 1, 28, 28], 0.0, 1.0, 2, 0).unwrap();
    let a = m.class_attention(&x).unwrap();
    assert_eq!(a.shape(), vec![3, 16]);
    for row in a.to_vec::<f32>().unwrap().chunks(16) {
        let s: f32 = row.iter().sum();
        assert!(row.iter().all(|&v| v >= 0.0) && s > 0.0 && s < 1.0, "{s}");
    }
}

#[test]
fn char_models_learn_a_periodic_text() {
    let _s = serial();
    let d = dev();
    let period: Vec<u32> = "hello, world. ".bytes().map(|b| (b % 16) as u32).collect();
    let text: Vec<u32> = period.iter().cycle().take(600).copied().collect();
    for arch in [CharArch::Lstm, CharArch::Transformer] {
        let vs = VarStore::new(&d, 3);
        let cfg = CharLmConfig {
            vocab: 16,
            arch,
            dim: 32,
            hidden: 64,
            layers: 2,
            heads: 2,
            context: 24,
            dropout: 0.0,
            seed: 0,
        };
        let m = CharLm::new(&vs.root(), cfg).unwrap();
        let mut opt = adam(&vs, 1e-2);
        let (b, t) = (8, 24);
        let ce = CrossEntropy::default();
        let (mut first, mut last) = (None, 0.0);
        for step in 0..80 {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for k in 0..b {
                let s = (step * 37 + k * 53) % (text.len() - t - 1);
                x.extend_from_slice(&text[s..s + t]);
                y.extend_from_slice(&text[s + 1..s + t + 1]);
            }
            let x = Tensor::from_slice(&d, &x, &[b, t]).unwrap();
            let y = Tensor::from_slice(&d, &y, &[b * t]).unwrap();
            let logits = m.forward_t(&x, true).unwrap();
            assert_eq!(logits.shape(), vec![b, t, 16]);
            let loss = cross_entropy(&logits.reshape(&[b * t, 16]).unwrap(), &y, &ce).unwrap();
            opt.zero_grad();
            loss.backward().unwrap();
            opt.step().unwrap();
            last = loss.item().unwrap();
            first.get_or_insert(last);
        }
        let first = first.unwrap();
        println!("{arch:?}: loss {first:.3} -> {last:.3} nats per character");
        assert!(last < 0.25, "{arch:?}: loss {first} -> {last}");
    }
}
