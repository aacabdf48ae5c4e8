//! A training loop stops with an error, instead of training on, when the loss or a
//! parameter stops being finite; a loader's failing transform stops it too.

use std::sync::Arc;

use cinder::Tensor;
use cinder::data::{DataLoader, Dataset, Transform};
use cinder::device::{Device, Error};
use cinder::models::train::{Step, check_finite_state, ensure_finite, train_epoch};
use cinder::models::{Activation, Mlp};
use cinder::nn::VarStore;
use cinder::nn::optim::{Sgd, SgdConfig};

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

/// 40 4x4 one-channel images of 2 classes (bright or dark).
fn data() -> Arc<Dataset> {
    let labels: Vec<u8> = (0..40).map(|i| (i % 2) as u8).collect();
    let images = labels
        .iter()
        .flat_map(|&l| (0..16).map(move |k| if l == 1 { 200 + k } else { 10 + k }))
        .map(|v| v as u8)
        .collect();
    Arc::new(Dataset::new(images, labels, [1, 4, 4], 2).unwrap())
}

fn model(vs: &VarStore) -> Mlp {
    Mlp::new(&vs.root(), &[16, 8, 2], Activation::Relu, 0.0, 0).unwrap()
}

fn sgd(vs: &VarStore, lr: f32) -> Sgd {
    Sgd::new(
        vs.parameters(),
        SgdConfig {
            lr,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn a_finite_run_trains_and_passes_the_checks() {
    let dev = dev();
    let vs = VarStore::new(&dev, 1);
    let m = model(&vs);
    let mut opt = sgd(&vs, 0.1);
    let loader = DataLoader::new(&dev, data(), 8).unwrap().shuffle(3);
    let mut reads = 0;
    let s = train_epoch(&m, &mut opt, &loader, 0, 2, |_, st: Step| {
        reads += st.loss.is_some() as usize;
    })
    .unwrap();
    assert_eq!(
        (s.examples, reads),
        (40, 2),
        "5 batches, the loss read after 2 and 4"
    );
    assert!(s.loss.is_finite() && s.loss > 0.0);
    check_finite_state(&vs).unwrap();
    check_finite_state(&VarStore::new(&dev, 0)).unwrap();
    assert_eq!(ensure_finite("x", 1.5).unwrap(), 1.5);
}

#[test]
fn a_nan_parameter_stops_the_epoch_and_is_named() {
    let dev = dev();
    let vs = VarStore::new(&dev, 1);
    let m = model(&vs);
    let mut opt = sgd(&vs, 0.1);
    let loader = DataLoader::new(&dev, data(), 8).unwrap();
    // one NaN weight in the second layer
    let w = vs.get("fc1.weight").unwrap();
    let mut v = w.to_vec::<f32>().unwrap();
    v[5] = f32::NAN;
    w.set_data(&Tensor::from_slice(&dev, &v, &[2, 8]).unwrap())
        .unwrap();
    match check_finite_state(&vs) {
        Err(e @ Error::Diverged { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(
                    "training: parameter or buffer `fc1.weight` [2, 8] holds 1 NaN or infinite value(s) of 16"
                ),
                "{msg}"
            );
            assert!(msg.contains("set_detect_anomaly"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // the epoch stops at the first loss it reads (after batch 2), not at its end
    let mut steps = 0;
    let e = train_epoch(&m, &mut opt, &loader, 4, 2, |_, _| steps += 1).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("training: the mean training loss after batch 2 of epoch 5 is NaN"),
        "{msg}"
    );
    assert_eq!(
        steps, 1,
        "stopped at the second batch, before its after_step"
    );
    // without reads inside the epoch, its end catches it
    let e = train_epoch(&m, &mut opt, &loader, 0, 0, |_, _| {}).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("training: the mean training loss of epoch 1 is NaN"),
        "{e}"
    );
    assert!(ensure_finite("the loss", f32::INFINITY).is_err());
}

#[test]
fn a_failing_transform_stops_the_epoch_with_its_error() {
    let dev = dev();
    let vs = VarStore::new(&dev, 1);
    let m = model(&vs);
    let mut opt = sgd(&vs, 0.1);
    let loader = DataLoader::new(&dev, data(), 8)
        .unwrap()
        .transforms(vec![Transform::lambda("panics", |_, _, _| {
            panic!("a bug in a transform")
        })]);
    let e = train_epoch(&m, &mut opt, &loader, 0, 0, |_, _| {}).unwrap_err();
    assert!(
        e.to_string()
            .contains("DataLoader: the prefetch thread panicked")
            && e.to_string().contains("a bug in a transform"),
        "{e}"
    );
}
