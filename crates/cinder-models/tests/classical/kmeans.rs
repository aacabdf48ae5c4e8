//! K-means on well-separated blobs and degenerate cases, against CPU references.

use super::common::*;
use cinder_device::Error;
use cinder_models::classical::KMeans;

/// `k` blobs of `per` points in `d` dimensions around far-apart centers (noise 0.5);
/// returns the data and the true blob of every point.
fn blobs(seed: u64, k: usize, per: usize, d: usize) -> (Vec<f32>, Vec<usize>) {
    let mut r = rng(seed);
    let centers = uniform(&mut r, k * d, -20.0, 20.0);
    let noise = normal(&mut r, k * per * d);
    let mut x = Vec::new();
    let mut truth = Vec::new();
    // Interleave the blobs so that no blob is a contiguous block.
    for i in 0..per {
        for c in 0..k {
            for j in 0..d {
                x.push(centers[c * d + j] + 0.5 * noise[(i * k + c) * d + j]);
            }
            truth.push(c);
        }
    }
    (x, truth)
}

#[test]
fn kmeans_recovers_blobs() {
    let (k, per, d) = (4, 60, 5);
    let (x, truth) = blobs(1, k, per, d);
    let n = k * per;
    let xt = tensor(&x, &[n, d]);
    let mut km = KMeans::new(k).with_n_init(3).with_seed(7);
    km.fit(&xt).unwrap();
    let labels = read_u32(km.labels().unwrap());
    // Same partition as the truth: a bijection between found and true clusters.
    let mut map = vec![usize::MAX; k];
    for (i, &l) in labels.iter().enumerate() {
        let l = l as usize;
        assert!(l < k);
        if map[l] == usize::MAX {
            map[l] = truth[i];
        }
        assert_eq!(map[l], truth[i], "point {i}");
    }
    let mut seen = map.clone();
    seen.sort();
    assert_eq!(seen, (0..k).collect::<Vec<_>>());
    // Centers are the CPU means of the blobs; inertia the CPU sum of squares.
    let centers = read(km.centers().unwrap());
    let mut inertia = 0.0f64;
    for (l, &t) in map.iter().enumerate() {
        let members: Vec<usize> = (0..n).filter(|&i| truth[i] == t).collect();
        for j in 0..d {
            let m =
                members.iter().map(|&i| x[i * d + j] as f64).sum::<f64>() / members.len() as f64;
            assert!(
                (centers[l * d + j] as f64 - m).abs() < 1e-3,
                "center {l} dim {j}"
            );
            inertia += members
                .iter()
                .map(|&i| (x[i * d + j] as f64 - m).powi(2))
                .sum::<f64>();
        }
    }
    let got = km.inertia() as f64;
    assert!(
        (got - inertia).abs() <= 1e-3 * inertia,
        "inertia {got} vs {inertia}"
    );
    assert!((km.score(&xt).unwrap() as f64 + inertia).abs() <= 1e-3 * inertia);
    // predict on the training data agrees with labels; transform is the CPU distance.
    assert_eq!(read_u32(&km.predict(&xt).unwrap()), labels);
    let dist = read(&km.transform(&xt.narrow(0, 0, 3).unwrap()).unwrap());
    for i in 0..3 {
        for c in 0..k {
            let want: f64 = (0..d)
                .map(|j| (x[i * d + j] as f64 - centers[c * d + j] as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((dist[i * k + c] as f64 - want).abs() < 1e-2 + 1e-4 * want);
        }
    }
    assert!(km.n_iter() >= 1);
}

#[test]
fn kmeans_k_equals_n_has_zero_inertia() {
    // Every point its own cluster: k-means++ must pick distinct points, Lloyd keeps them.
    let x = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 5.0, 5.0, -3.0, 2.0, 2.0, -4.0];
    let xt = tensor(&x, &[6, 2]);
    let mut km = KMeans::new(6).with_seed(3);
    km.fit(&xt).unwrap();
    assert!(km.inertia().abs() < 1e-4, "inertia {}", km.inertia());
    let mut labels = read_u32(km.labels().unwrap());
    labels.sort();
    assert_eq!(labels, vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn kmeans_more_inits_never_worse() {
    // Overlapping blobs, many local optima: the best of 4 initializations (the first of
    // which is the single run's) is at most the single run's inertia.
    let (x, _) = blobs(5, 6, 20, 2);
    let mut r = rng(9);
    let jitter = uniform(&mut r, x.len(), -15.0, 15.0);
    let x: Vec<f32> = x.iter().zip(&jitter).map(|(a, b)| a * 0.2 + b).collect();
    let xt = tensor(&x, &[120, 2]);
    let mut one = KMeans::new(8).with_seed(11);
    one.fit(&xt).unwrap();
    let mut four = KMeans::new(8).with_seed(11).with_n_init(4);
    four.fit(&xt).unwrap();
    assert!(
        four.inertia() <= one.inertia() * (1.0 + 1e-6),
        "{} > {}",
        four.inertia(),
        one.inertia()
    );
    // The reported inertia is the CPU inertia of the reported labels and centers.
    let (labels, centers) = (
        read_u32(four.labels().unwrap()),
        read(four.centers().unwrap()),
    );
    let cpu: f64 = (0..120)
        .map(|i| {
            let c = labels[i] as usize;
            (0..2)
                .map(|j| (x[i * 2 + j] as f64 - centers[c * 2 + j] as f64).powi(2))
                .sum::<f64>()
        })
        .sum();
    assert!((four.inertia() as f64 - cpu).abs() <= 1e-3 * cpu);
}

#[test]
fn kmeans_bad_input() {
    let xt = tensor(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    assert!(matches!(
        KMeans::new(3).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        KMeans::new(0).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        KMeans::new(1).with_n_init(0).fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
    let nan = tensor(&[1.0, f32::NAN, 3.0, 4.0], &[2, 2]);
    match KMeans::new(1).fit(&nan) {
        Err(Error::InvalidArgument { msg, .. }) => assert!(msg.contains("NaN"), "{msg}"),
        other => panic!("expected NaN error, got {:?}", other.map(|_| ())),
    }
    let flat = tensor(&[1.0, 2.0, 3.0, 4.0], &[4]);
    assert!(matches!(
        KMeans::new(1).fit(&flat),
        Err(Error::InvalidArgument { .. })
    ));
    let km = KMeans::new(2);
    assert!(km.predict(&xt).is_err());
    let mut km = KMeans::new(2);
    km.fit(&xt).unwrap();
    assert!(matches!(
        km.predict(&tensor(&[1.0; 3], &[1, 3])),
        Err(Error::ShapeMismatch { .. })
    ));
}
