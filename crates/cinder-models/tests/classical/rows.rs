//! Row blocks: every pipeline that accepts [`RowBlocks`] gives on blocks what it gives on
//! one tensor of the same rows.

use crate::common::*;
use cinder_autograd::Tensor;
use cinder_device::Error;
use cinder_models::classical::{BetaLoss, FastIca, KMeans, Nmf, Pca, ProbabilisticPca, RowBlocks};

/// Clustered data, `n` x `d`, with an offset so that centering matters.
fn data(seed: u64, n: usize, d: usize) -> Vec<f32> {
    let mut r = rng(seed);
    let centers = uniform(&mut r, 4 * d, -3.0, 3.0);
    let noise = normal(&mut r, n * d);
    (0..n * d)
        .map(|i| 5.0 + centers[(i / d % 4) * d + i % d] + 0.7 * noise[i])
        .collect()
}

/// Absolute differences of two equal-length vectors, at most `tol` (relative to the scale).
fn assert_same(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * scale, "at {i}: {x} vs {y}");
    }
}

#[test]
fn row_blocks_split_and_check() {
    let (n, d) = (101, 6);
    let x = data(1, n, d);
    let b = RowBlocks::from_slice(&dev(), &x, n, d, Some(37)).unwrap();
    assert_eq!((b.n_rows(), b.n_cols(), b.blocks().len()), (101, 6, 3));
    assert_eq!(b.blocks()[2].shape(), vec![27, 6]);
    let back: Vec<f32> = b.blocks().iter().flat_map(read).collect();
    assert_eq!(back, x);
    assert!(RowBlocks::from_slice(&dev(), &x, n, d + 1, None).is_err());
    assert!(RowBlocks::from_slice(&dev(), &x, n, d, Some(0)).is_err());
    assert!(RowBlocks::from_blocks(vec![]).is_err());
    let mismatch = vec![tensor(&x[..12], &[2, 6]), tensor(&x[..12], &[3, 4])];
    assert!(matches!(
        RowBlocks::from_blocks(mismatch),
        Err(Error::ShapeMismatch { .. })
    ));
    // A NaN in a later block is found.
    let mut bad = x.clone();
    bad[90 * d] = f32::NAN;
    let bb = RowBlocks::from_slice(&dev(), &bad, n, d, Some(37)).unwrap();
    assert!(Pca::new(2).fit(&bb).is_err());
    assert!(KMeans::new(2).fit(&bb).is_err());
}

#[test]
fn pipelines_on_blocks_match_one_tensor() {
    let (n, d) = (203, 8);
    let x = data(2, n, d);
    let one = tensor(&x, &[n, d]);
    let blocks = RowBlocks::from_slice(&dev(), &x, n, d, Some(50)).unwrap();
    assert_eq!(blocks.blocks().len(), 5);

    let mut p1 = Pca::new(3).with_seed(4);
    p1.fit(&one).unwrap();
    let mut p2 = Pca::new(3).with_seed(4);
    p2.fit(&blocks).unwrap();
    assert_same(
        &read(p2.explained_variance().unwrap()),
        &read(p1.explained_variance().unwrap()),
        1e-4,
    );
    assert_same(&read(p2.mean().unwrap()), &read(p1.mean().unwrap()), 1e-5);
    // Components up to sign, through the projections.
    let (z1, z2) = (
        read(p1.transform(&one).unwrap()),
        read(p2.transform(&blocks).unwrap()),
    );
    assert_eq!(z2.len(), n * 3);
    for c in 0..3 {
        let dot: f32 = (0..n).map(|i| z1[i * 3 + c] * z2[i * 3 + c]).sum();
        let s = dot.signum();
        let a: Vec<f32> = (0..n).map(|i| z1[i * 3 + c]).collect();
        let b: Vec<f32> = (0..n).map(|i| s * z2[i * 3 + c]).collect();
        assert_same(&b, &a, 1e-3);
    }

    let mut q1 = ProbabilisticPca::new(2).with_seed(1);
    q1.fit(&one).unwrap();
    let mut q2 = ProbabilisticPca::new(2).with_seed(1);
    q2.fit(&blocks).unwrap();
    let (s1, s2) = (q1.noise_variance().unwrap(), q2.noise_variance().unwrap());
    assert!((s1 - s2).abs() <= 1e-4 * s1, "{s1} vs {s2}");

    // k-means++ and Lloyd with the same seed: the same draws, the same fit.
    let mut k1 = KMeans::new(4).with_n_init(2).with_seed(9);
    k1.fit(&one).unwrap();
    let mut k2 = KMeans::new(4).with_n_init(2).with_seed(9);
    k2.fit(&blocks).unwrap();
    assert_eq!(
        read_u32(k2.labels().unwrap()),
        read_u32(k1.labels().unwrap())
    );
    assert_same(
        &read(k2.centers().unwrap()),
        &read(k1.centers().unwrap()),
        1e-4,
    );
    assert!((k1.inertia() - k2.inertia()).abs() <= 1e-4 * k1.inertia());
    assert_eq!(k1.n_iter(), k2.n_iter());

    let mut i1 = FastIca::new(3).with_seed(2);
    i1.fit(&one).unwrap();
    let mut i2 = FastIca::new(3).with_seed(2);
    i2.fit(&blocks).unwrap();
    assert_same(
        &read(i2.components().unwrap()),
        &read(i1.components().unwrap()),
        2e-3,
    );
    assert!(
        FastIca::new(d).with_whiten(false).fit(&blocks).is_err(),
        "no whitening on blocks"
    );

    // NMF, both losses, from the same seeded random start (the data are positive).
    for loss in [BetaLoss::Frobenius, BetaLoss::KullbackLeibler] {
        let fit = |x: &dyn Fn(&mut Nmf) -> Tensor| {
            let mut m = Nmf::new(3)
                .with_beta_loss(loss)
                .with_max_iter(30)
                .with_seed(3);
            let w = x(&mut m);
            (
                read(w),
                read(m.components().unwrap()),
                m.reconstruction_err().unwrap(),
            )
        };
        let (w1, h1, e1) = fit(&|m| m.fit_transform(&one).unwrap());
        let (w2, h2, e2) = fit(&|m| m.fit_transform(&blocks).unwrap());
        assert_same(&w2, &w1, 1e-4);
        assert_same(&h2, &h1, 1e-4);
        assert!((e1 - e2).abs() <= 1e-4 * e1, "{loss:?}: {e1} vs {e2}");
    }
}
