//! Readers on the real Fashion-MNIST files (installed by scripts/setup.sh), on CIFAR-10
//! files written here, on corrupt and truncated files; the loader and the transforms.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cinder_data::mnist::{self, Split};
use cinder_data::{DataLoader, Dataset, DistributedSampler, Transform, cifar, idx};
use cinder_device::{Device, Error};

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

/// A fresh directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cinder-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn fashion_mnist_from_the_debian_package() {
    let dir = mnist::data_dir(None);
    let train =
        mnist::load(&dir, Split::Train).expect("Fashion-MNIST (scripts/setup.sh installs it)");
    let test = mnist::load(&dir, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.image_shape(), [1, 28, 28]);
    // Fashion-MNIST is balanced: 6,000 and 1,000 images per class.
    assert_eq!(train.class_counts(), vec![6000; 10]);
    assert_eq!(test.class_counts(), vec![1000; 10]);
    // The first training image is an ankle boot (label 9) whose pixels sum to 76,247.
    assert_eq!(&train.labels()[..5], &[9, 0, 0, 3, 0]);
    assert_eq!(
        train.image(0).iter().map(|&p| p as u32).sum::<u32>(),
        76_247
    );
    assert_eq!(&test.labels()[..5], &[9, 2, 1, 1, 6]);
}

#[test]
fn idx_raw_and_gzip_agree_and_bad_files_are_errors() {
    let d = temp_dir("idx");
    let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    let bytes = idx::encode(&[2, 3, 4], &data).unwrap();
    std::fs::write(d.join("raw"), &bytes).unwrap();
    std::fs::write(d.join("packed.gz"), gz(&bytes)).unwrap();
    let a = idx::read(&d.join("raw")).unwrap();
    assert_eq!(a.dims, vec![2, 3, 4]);
    assert_eq!(a.data, data);
    assert_eq!(idx::read(&d.join("packed.gz")).unwrap(), a);

    // every truncation is an Err naming the file, never a panic
    for cut in 0..bytes.len() {
        let p = d.join("cut");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        match idx::read(&p) {
            Err(Error::Format { path, .. }) => assert_eq!(path, p),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // a truncated gzip stream
    let z = gz(&bytes);
    std::fs::write(d.join("cut.gz"), &z[..z.len() / 2]).unwrap();
    assert!(matches!(
        idx::read(&d.join("cut.gz")),
        Err(Error::Format { .. })
    ));
    // bad magic, unsupported type, too long
    let mut bad = bytes.clone();
    bad[0] = 1;
    assert!(
        idx::parse(Path::new("m"), &bad)
            .unwrap_err()
            .to_string()
            .contains("not an IDX file")
    );
    let mut f32_type = bytes.clone();
    f32_type[2] = 0x0D;
    assert!(
        idx::parse(Path::new("t"), &f32_type)
            .unwrap_err()
            .to_string()
            .contains("0x0d")
    );
    let mut long = bytes.clone();
    long.push(0);
    let e = idx::parse(Path::new("l"), &long).unwrap_err().to_string();
    assert!(e.contains("need 24 data bytes, the file has 25"), "{e}");
    // a missing file names the path and how to install the data
    let e = mnist::load(&d, Split::Train).unwrap_err().to_string();
    assert!(e.contains("dataset-fashion-mnist"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn mnist_directory_with_mismatched_labels_is_an_error() {
    let d = temp_dir("mnist");
    let imgs = idx::encode(&[3, 2, 2], &[0; 12]).unwrap();
    std::fs::write(d.join("t10k-images-idx3-ubyte"), &imgs).unwrap();
    std::fs::write(
        d.join("t10k-labels-idx1-ubyte.gz"),
        gz(&idx::encode(&[2], &[1, 2]).unwrap()),
    )
    .unwrap();
    assert!(
        mnist::load(&d, Split::Test)
            .unwrap_err()
            .to_string()
            .contains("expected [3] labels")
    );
    std::fs::write(
        d.join("t10k-labels-idx1-ubyte.gz"),
        gz(&idx::encode(&[3], &[1, 12, 2]).unwrap()),
    )
    .unwrap();
    let e = mnist::load(&d, Split::Test).unwrap_err().to_string();
    assert!(e.contains("label 12") && e.contains("offset 9"), "{e}");
    std::fs::write(
        d.join("t10k-labels-idx1-ubyte.gz"),
        gz(&idx::encode(&[3], &[1, 7, 2]).unwrap()),
    )
    .unwrap();
    let ok = mnist::load(&d, Split::Test).unwrap();
    assert_eq!(
        (ok.len(), ok.image_shape(), ok.labels()),
        (3, [1, 2, 2], &[1u8, 7, 2][..])
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn cifar10_files_written_here() {
    let d = temp_dir("cifar");
    let per = 3 * 32 * 32;
    let mut all_images = Vec::new();
    let mut all_labels = Vec::new();
    for b in 1..=5u8 {
        let n = b as usize; // 1..5 records per file
        let labels: Vec<u8> = (0..n).map(|i| ((i + b as usize) % 10) as u8).collect();
        let images: Vec<u8> = (0..n * per)
            .map(|i| ((i * 7 + b as usize) % 251) as u8)
            .collect();
        std::fs::write(
            d.join(format!("data_batch_{b}.bin")),
            cifar::encode(&images, &labels).unwrap(),
        )
        .unwrap();
        all_images.extend(images);
        all_labels.extend(labels);
    }
    let train = cifar::load(&d, Split::Train).unwrap();
    assert_eq!(train.len(), 15);
    assert_eq!(train.image_shape(), [3, 32, 32]);
    assert_eq!(train.labels(), &all_labels[..]);
    assert_eq!(train.images(), &all_images[..]);
    // the record layout: label byte, then the red, green and blue planes
    let rec = std::fs::read(d.join("data_batch_2.bin")).unwrap();
    assert_eq!(rec.len(), 2 * cifar::RECORD);
    assert_eq!(rec[0], all_labels[1]);
    assert_eq!(&rec[1..1 + per], &all_images[per..2 * per]);

    // the test file is missing: an Io error naming it
    match cifar::load(&d, Split::Test) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("test_batch.bin")),
        other => panic!("{other:?}"),
    }
    // truncated files and bad labels
    let one = cifar::encode(&vec![0; per], &[3]).unwrap();
    for cut in [1, 100, cifar::RECORD - 1, cifar::RECORD + 5] {
        let bytes = if cut <= one.len() {
            one[..cut].to_vec()
        } else {
            [one.clone(), vec![0; 5]].concat()
        };
        std::fs::write(d.join("test_batch.bin"), &bytes).unwrap();
        assert!(
            matches!(cifar::load(&d, Split::Test), Err(Error::Format { .. })),
            "cut {cut}"
        );
    }
    let mut bad = cifar::encode(&vec![0; 2 * per], &[3, 4]).unwrap();
    bad[cifar::RECORD] = 10;
    std::fs::write(d.join("test_batch.bin"), &bad).unwrap();
    let e = cifar::load(&d, Split::Test).unwrap_err().to_string();
    assert!(e.contains("offset 3073") && e.contains("label 10"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// 10 one-pixel-per-channel 1x2x2 images whose pixels encode the index.
fn tiny(n: usize) -> Dataset {
    let images: Vec<u8> = (0..n * 4).map(|i| (i / 4 * 10 + i % 4) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    Dataset::new(images, labels, [1, 2, 2], 3).unwrap()
}

#[test]
fn loader_covers_each_example_once_with_seeded_shuffles() {
    let data = Arc::new(tiny(10));
    let loader = DataLoader::new(&dev(), data.clone(), 4).unwrap().shuffle(7);
    assert_eq!(loader.num_batches(), 3);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    for b in loader.epoch(0) {
        let b = b.unwrap();
        sizes.push(b.indices.len());
        let imgs = b.images.to_vec::<f32>().unwrap();
        let labels = b.labels.to_vec::<u32>().unwrap();
        assert_eq!(b.images.shape(), &[b.indices.len(), 1, 2, 2]);
        for (k, &i) in b.indices.iter().enumerate() {
            let want: Vec<f32> = data.image(i).iter().map(|&p| p as f32 / 255.0).collect();
            assert_eq!(&imgs[k * 4..k * 4 + 4], &want[..]);
            assert_eq!(labels[k], data.labels()[i] as u32);
        }
        seen.extend(b.indices);
    }
    assert_eq!(sizes, vec![4, 4, 2]);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled");
    // same seed and epoch: same order; next epoch: another order
    assert_eq!(loader.order(0), seen);
    assert_ne!(loader.order(1), seen);
    let again = DataLoader::new(&dev(), data.clone(), 4).unwrap().shuffle(7);
    assert_eq!(again.order(0), seen);
    // drop_last, no shuffle, and stopping early
    let dl = DataLoader::new(&dev(), data, 4).unwrap().drop_last(true);
    assert_eq!(dl.num_batches(), 2);
    let firsts: Vec<Vec<usize>> = dl.epoch(0).map(|b| b.unwrap().indices).collect();
    assert_eq!(firsts, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
    let mut e = dl.epoch(1);
    assert!(e.next().is_some());
    drop(e);
    assert!(DataLoader::new(&dev(), Arc::new(tiny(2)), 0).is_err());
}

#[test]
fn split_subset_take() {
    let d = tiny(10);
    let (tr, va) = d.split(0.3, 1).unwrap();
    assert_eq!((tr.len(), va.len()), (7, 3));
    let key = |ds: &Dataset| -> Vec<u8> { (0..ds.len()).map(|i| ds.image(i)[0]).collect() };
    let mut all = [key(&tr), key(&va)].concat();
    all.sort();
    assert_eq!(all, (0..10).map(|i| i * 10).collect::<Vec<u8>>());
    assert_eq!(d.split(0.3, 1).unwrap(), (tr, va), "seeded");
    assert_eq!(d.take(4).len(), 4);
    assert_eq!(d.take(40).len(), 10);
    assert!(d.subset(&[10]).is_err());
    assert!(d.split(1.5, 0).is_err());
    assert!(
        Dataset::new(vec![0; 8], vec![0, 5], [1, 2, 2], 3).is_err(),
        "label past classes"
    );
}

#[test]
fn transforms() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let shape = [2, 2, 3];
    let base: Vec<f32> = (0..12).map(|i| i as f32).collect();

    let mut x = base.clone();
    Transform::Normalize {
        mean: vec![1.0, 2.0],
        std: vec![2.0, 4.0],
    }
    .apply(&mut x, shape, &mut rng)
    .unwrap();
    let want: Vec<f32> = base
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if i < 6 {
                (v - 1.0) / 2.0
            } else {
                (v - 2.0) / 4.0
            }
        })
        .collect();
    assert_eq!(x, want);

    let mut x = base.clone();
    Transform::HorizontalFlip { p: 1.0 }
        .apply(&mut x, shape, &mut rng)
        .unwrap();
    assert_eq!(&x[..3], &[2.0, 1.0, 0.0]);
    let mut x = base.clone();
    Transform::HorizontalFlip { p: 0.0 }
        .apply(&mut x, shape, &mut rng)
        .unwrap();
    assert_eq!(x, base);

    // a crop of the zero-padded image: every value is 0 or the source shifted by one offset
    for _ in 0..20 {
        let mut x = base.clone();
        Transform::RandomCrop { padding: 1 }
            .apply(&mut x, shape, &mut rng)
            .unwrap();
        let shifted = (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (dy, dx)))
            .any(|(dy, dx)| {
                (0..2).all(|c| {
                    (0..2).all(|y| {
                        (0..3).all(|xx| {
                            let (sy, sx) = (y as isize + dy, xx as isize + dx);
                            let v = x[(c * 2 + y) * 3 + xx];
                            if sy < 0 || sx < 0 || sy >= 2 || sx >= 3 {
                                v == 0.0
                            } else {
                                v == base[(c * 2 + sy as usize) * 3 + sx as usize]
                            }
                        })
                    })
                })
            });
        assert!(shifted, "{x:?}");
    }

    let n = 20_000;
    let mut x = vec![0.5f32; n];
    Transform::GaussianNoise { std: 0.2 }
        .apply(&mut x, [1, 1, n], &mut rng)
        .unwrap();
    let m = x.iter().sum::<f32>() / n as f32;
    let s = (x.iter().map(|v| (v - m).powi(2)).sum::<f32>() / n as f32).sqrt();
    assert!((m - 0.5).abs() < 0.01 && (s - 0.2).abs() < 0.01, "{m} {s}");

    // the loader applies them (normalize to mean 0.5, std 0.5 maps [0, 1] to [-1, 1])
    let data = Arc::new(Dataset::new(vec![0, 255, 51, 255], vec![0], [1, 2, 2], 1).unwrap());
    let dl = DataLoader::new(&dev(), data, 1)
        .unwrap()
        .transforms(vec![Transform::Normalize {
            mean: vec![0.5],
            std: vec![0.5],
        }]);
    let b = dl.epoch(0).next().unwrap().unwrap();
    let v = b.images.to_vec::<f32>().unwrap();
    assert!(
        (v[0] + 1.0).abs() < 1e-6 && (v[1] - 1.0).abs() < 1e-6 && (v[2] + 0.6).abs() < 1e-6,
        "{v:?}"
    );
}

#[test]
fn transforms_refuse_bad_parameters() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let shape = [2, 1, 2];
    let base = vec![0.25f32, 0.5, 0.75, 1.0];
    let cases = [
        (
            Transform::Normalize {
                mean: vec![0.0, 0.0, 0.0],
                std: vec![1.0],
            },
            "3 mean values for 2 channels",
        ),
        (
            Transform::Normalize {
                mean: vec![0.0],
                std: vec![1.0, 0.0],
            },
            "std 0 is not a positive finite number",
        ),
        (
            Transform::Normalize {
                mean: vec![f32::NAN],
                std: vec![1.0],
            },
            "mean NaN is not finite",
        ),
        (
            Transform::HorizontalFlip { p: 1.5 },
            "p = 1.5 is outside [0, 1]",
        ),
        (
            Transform::HorizontalFlip { p: f32::NAN },
            "p = NaN is outside [0, 1]",
        ),
        (
            Transform::GaussianNoise { std: -0.1 },
            "std -0.1 is not a non-negative finite number",
        ),
    ];
    for (t, want) in cases {
        let mut x = base.clone();
        let e = t.apply(&mut x, shape, &mut rng).unwrap_err().to_string();
        assert!(e.contains(want), "{t:?}: {e}");
        assert_eq!(x, base, "{t:?} changed the image before failing");
    }
    // an image that does not have the shape's size
    let mut short = vec![0.0; 3];
    let e = Transform::HorizontalFlip { p: 0.0 }
        .apply(&mut short, shape, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 values is not of shape [2, 1, 2]"), "{e}");
    // a lambda runs on the image and its error comes back unchanged
    let double = Transform::lambda("double", |img, _, _| {
        img.iter_mut().for_each(|v| *v *= 2.0);
        Ok(())
    });
    let mut x = base.clone();
    double.apply(&mut x, shape, &mut rng).unwrap();
    assert_eq!(x, vec![0.5, 1.0, 1.5, 2.0]);
    assert_eq!(double.clone(), double);
    assert_eq!(format!("{double:?}"), "Lambda(Lambda(\"double\"))");
}

/// A loader over `tiny(10)` in batches of 2 whose lambda transform fails (by `fail`) on the
/// image of example 5, i.e. in the third batch.
fn failing_loader(fail: fn() -> cinder_device::Result<()>) -> DataLoader {
    DataLoader::new(&dev(), Arc::new(tiny(10)), 2)
        .unwrap()
        .transforms(vec![Transform::lambda(
            "fails on example 5",
            move |img, _, _| {
                // pixel 0 of example i is 10 i / 255
                if (img[0] * 255.0).round() as u32 == 50 {
                    fail()?;
                }
                Ok(())
            },
        )])
}

#[test]
fn an_error_in_a_transform_ends_the_epoch_with_that_error() {
    let loader = failing_loader(|| {
        Err(cinder_device::Error::invalid(
            "my transform",
            "pixel out of range",
            &[1, 2, 2],
        ))
    });
    let items: Vec<_> = loader.epoch(0).collect();
    assert_eq!(
        items.len(),
        3,
        "two good batches, then the error, then the end"
    );
    assert_eq!(items[0].as_ref().unwrap().indices, vec![0, 1]);
    assert_eq!(items[1].as_ref().unwrap().indices, vec![2, 3]);
    match &items[2] {
        Err(Error::InvalidArgument { op, msg, .. }) => {
            assert_eq!((*op, msg.as_str()), ("my transform", "pixel out of range"));
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("the failing batch came back Ok"),
    }
    // the next epoch fails the same way, and stopping early after an error is fine
    let mut e = loader.epoch(1);
    assert!(e.by_ref().any(|b| b.is_err()));
    assert!(e.next().is_none());
}

#[test]
fn a_panic_in_a_transform_is_an_error_naming_the_loader() {
    let loader = failing_loader(|| panic!("boom in the transform"));
    let mut e = loader.epoch(3);
    let mut ok = 0;
    let err = loop {
        match e.next() {
            Some(Ok(_)) => ok += 1,
            Some(Err(err)) => break err,
            None => panic!("the epoch ended without an error after {ok} batches"),
        }
    };
    // example 5 is in batch 2 of an unshuffled epoch
    assert_eq!(ok, 2);
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "DataLoader: the prefetch thread panicked while preparing batch 2 of epoch 3"
        ) && msg.contains("boom in the transform"),
        "{msg}"
    );
    assert!(e.next().is_none(), "nothing after the error");
    drop(e);
    // the loader is still usable, and a later epoch panics again rather than hanging
    assert_eq!(loader.epoch(4).filter(|b| b.is_err()).count(), 1);
    // a loader over the same data without the failing transform still works
    let good = DataLoader::new(&dev(), Arc::new(tiny(10)), 2).unwrap();
    assert_eq!(
        good.epoch(0)
            .map(|b| b.unwrap().indices.len())
            .sum::<usize>(),
        10
    );
}

#[test]
fn multi_member_gzip_is_read_whole_and_trailing_garbage_is_an_error() {
    let d = temp_dir("gzip-members");
    let data: Vec<u8> = (0..5 * 7 * 3).map(|i| (i * 13 % 256) as u8).collect();
    let bytes = idx::encode(&[5, 7, 3], &data).unwrap();
    // three members (the header split in the middle of a dimension), and an empty member
    let members = [
        gz(&bytes[..6]),
        gz(&[]),
        gz(&bytes[6..50]),
        gz(&bytes[50..]),
    ];
    let multi = members.concat();
    let p = d.join("multi.gz");
    std::fs::write(&p, &multi).unwrap();
    assert_eq!(idx::read_maybe_gz(&p).unwrap(), bytes);
    let a = idx::read(&p).unwrap();
    assert_eq!(
        (a.dims.clone(), a.data.clone()),
        (vec![5, 7, 3], data.clone())
    );
    // what the test wrote really has four members: the first alone is a short IDX header
    std::fs::write(d.join("first.gz"), &members[0]).unwrap();
    assert_eq!(
        idx::read_maybe_gz(&d.join("first.gz")).unwrap(),
        &bytes[..6]
    );

    // trailing bytes after the last member: an error naming the file and the offset
    for tail in [&b"junk"[..], &[0u8; 8][..], &[0x1f][..]] {
        let q = d.join("trailing.gz");
        std::fs::write(&q, [multi.clone(), tail.to_vec()].concat()).unwrap();
        match idx::read(&q) {
            Err(Error::Format { path, at, msg }) => {
                assert_eq!(path, q);
                assert_eq!(at, format!("offset {}", multi.len()), "{msg}");
                assert!(
                    msg.contains(&format!("{} bytes of trailing data", tail.len())),
                    "{msg}"
                );
            }
            other => panic!("tail {tail:?}: {other:?}"),
        }
    }
    // a second member cut short: corrupt data at that member's offset
    let q = d.join("cut-member.gz");
    let m0 = gz(&bytes[..40]);
    let m1 = gz(&bytes[40..]);
    for cut in [3, 10, m1.len() - 4, m1.len() - 1] {
        std::fs::write(&q, [m0.clone(), m1[..cut].to_vec()].concat()).unwrap();
        match idx::read(&q) {
            Err(Error::Format { path, at, .. }) => {
                assert_eq!(path, q);
                assert_eq!(
                    at,
                    format!("offset {} (gzip member 1)", m0.len()),
                    "cut {cut}"
                );
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
    // a corrupt byte in a member's CRC is an error too
    let mut bad_crc = [m0.clone(), m1.clone()].concat();
    let at = bad_crc.len() - 6;
    bad_crc[at] ^= 0xff;
    std::fs::write(&q, &bad_crc).unwrap();
    assert!(matches!(idx::read(&q), Err(Error::Format { .. })));
    std::fs::write(&q, [m0, m1].concat()).unwrap();
    assert_eq!(idx::read(&q).unwrap().data, data);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Every rank's indices for `n` examples over `w` ranks.
fn shards(n: usize, w: usize, seed: Option<u64>, drop_last: bool, epoch: u64) -> Vec<Vec<usize>> {
    (0..w)
        .map(|r| {
            let s = DistributedSampler::new(n, w, r)
                .unwrap()
                .drop_last(drop_last);
            let s = match seed {
                Some(seed) => s.shuffle(seed),
                None => s,
            };
            assert_eq!(s.indices(epoch).len(), s.num_samples());
            s.indices(epoch)
        })
        .collect()
}

#[test]
fn distributed_sampler_matches_pytorch_without_shuffle() {
    // torch.utils.data.DistributedSampler(range(n), num_replicas=w, rank=r, shuffle=False,
    // drop_last=d), PyTorch 2.x.
    let cases: [(usize, usize, bool, Vec<Vec<usize>>); 8] = [
        (
            10,
            3,
            false,
            vec![vec![0, 3, 6, 9], vec![1, 4, 7, 0], vec![2, 5, 8, 1]],
        ),
        (
            10,
            3,
            true,
            vec![vec![0, 3, 6], vec![1, 4, 7], vec![2, 5, 8]],
        ),
        (
            7,
            4,
            false,
            vec![vec![0, 4], vec![1, 5], vec![2, 6], vec![3, 0]],
        ),
        (7, 4, true, vec![vec![0], vec![1], vec![2], vec![3]]),
        (2, 3, false, vec![vec![0], vec![1], vec![0]]),
        (2, 3, true, vec![vec![], vec![], vec![]]),
        (8, 2, false, vec![vec![0, 2, 4, 6], vec![1, 3, 5, 7]]),
        (8, 2, true, vec![vec![0, 2, 4, 6], vec![1, 3, 5, 7]]),
    ];
    for (n, w, d, want) in cases {
        assert_eq!(
            shards(n, w, None, d, 0),
            want,
            "n {n}, {w} ranks, drop_last {d}"
        );
    }
    assert!(DistributedSampler::new(10, 0, 0).is_err());
    assert!(DistributedSampler::new(10, 2, 2).is_err());
    assert!(shards(0, 2, Some(1), false, 0).iter().all(|s| s.is_empty()));
}

#[test]
fn distributed_shards_are_disjoint_cover_the_data_and_follow_the_seed() {
    for (n, w) in [(60, 2), (61, 2), (100, 3), (5, 4)] {
        for epoch in 0..3 {
            // drop_last: disjoint, all but the n mod w tail of the epoch's order.
            let s = shards(n, w, Some(9), true, epoch);
            let mut all: Vec<usize> = s.concat();
            all.sort();
            let before = all.len();
            all.dedup();
            assert_eq!(all.len(), before, "disjoint: n {n}, {w} ranks");
            assert_eq!(all.len(), n / w * w);
            // padded: every example, and only the w - n mod w padded ones twice.
            let p = shards(n, w, Some(9), false, epoch);
            let mut all: Vec<usize> = p.concat();
            assert_eq!(all.len(), n.div_ceil(w) * w);
            all.sort();
            all.dedup();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "cover: n {n}, {w} ranks");
            // Rank r's k-th example is the (k w + r)-th of the one-process order.
            let one = DataLoader::new(&dev(), Arc::new(tiny(n)), 1)
                .unwrap()
                .shuffle(9)
                .order(epoch);
            for (r, shard) in s.iter().enumerate() {
                for (k, &i) in shard.iter().enumerate() {
                    assert_eq!(i, one[k * w + r]);
                }
            }
        }
        // Same seed and world size: the same shards; another epoch or seed: others.
        assert_eq!(
            shards(n, w, Some(9), true, 1),
            shards(n, w, Some(9), true, 1)
        );
        if n > 10 {
            assert_ne!(
                shards(n, w, Some(9), true, 1),
                shards(n, w, Some(9), true, 2)
            );
            assert_ne!(
                shards(n, w, Some(9), true, 1),
                shards(n, w, Some(8), true, 1)
            );
        }
    }
}

#[test]
fn a_loader_with_a_sampler_reads_its_shard() {
    let data = Arc::new(tiny(10));
    let s = DistributedSampler::new(10, 3, 1).unwrap().shuffle(4);
    let dl = DataLoader::new(&dev(), data.clone(), 2)
        .unwrap()
        .shuffle(4)
        .sampler(s)
        .unwrap();
    assert_eq!(dl.num_batches(), 2);
    let got: Vec<usize> = dl.epoch(3).flat_map(|b| b.unwrap().indices).collect();
    assert_eq!(got, s.indices(3));
    let e = DataLoader::new(&dev(), data, 2)
        .unwrap()
        .sampler(DistributedSampler::new(11, 3, 1).unwrap())
        .err()
        .unwrap();
    assert!(e.to_string().contains("11"), "{e}");
}
