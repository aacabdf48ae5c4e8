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
    assert_eq!(read_u32(km.predict(&xt).unwrap()), labels);
    let dist = read(km.transform(&xt.narrow(0, 0, 3).unwrap()).unwrap());
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

/// Plain f64 Lloyd with the same rules as the GPU version: assign to the nearest centroid
/// (first on ties), move each centroid to its members' mean, and move the j-th empty cluster
/// to the j-th farthest sample from its nearest centroid (lower index first on ties); stop
/// when the squared shift is <= tol.
fn cpu_lloyd(x: &[f32], n: usize, d: usize, init: &[f32], tol: f64) -> (Vec<f64>, Vec<usize>) {
    cpu_lloyd_iters(x, n, d, init, tol, 100)
}

/// [`cpu_lloyd`] with at most `max_iter` iterations.
fn cpu_lloyd_iters(
    x: &[f32],
    n: usize,
    d: usize,
    init: &[f32],
    tol: f64,
    max_iter: usize,
) -> (Vec<f64>, Vec<usize>) {
    let k = init.len() / d;
    let mut c: Vec<f64> = init.iter().map(|&v| v as f64).collect();
    let dist = |c: &[f64], i: usize, j: usize| -> f64 {
        (0..d)
            .map(|t| (x[i * d + t] as f64 - c[j * d + t]).powi(2))
            .sum()
    };
    let assign = |c: &[f64]| -> (Vec<usize>, Vec<f64>) {
        (0..n)
            .map(|i| {
                let mut best = (0, f64::INFINITY);
                for j in 0..k {
                    let dd = dist(c, i, j);
                    if dd < best.1 {
                        best = (j, dd);
                    }
                }
                best
            })
            .unzip()
    };
    for _ in 0..max_iter {
        let (labels, mind) = assign(&c);
        let mut far: Vec<usize> = (0..n).collect();
        far.sort_by(|&a, &b| mind[b].partial_cmp(&mind[a]).unwrap().then(a.cmp(&b)));
        let mut newc = vec![0.0; k * d];
        let mut counts = vec![0usize; k];
        for i in 0..n {
            counts[labels[i]] += 1;
            for t in 0..d {
                newc[labels[i] * d + t] += x[i * d + t] as f64;
            }
        }
        let mut n_empty = 0;
        for j in 0..k {
            let rank = n_empty;
            if counts[j] == 0 {
                n_empty += 1;
            }
            for t in 0..d {
                newc[j * d + t] = if counts[j] == 0 {
                    x[far[rank] * d + t] as f64
                } else {
                    newc[j * d + t] / counts[j] as f64
                };
            }
        }
        let shift: f64 = newc.iter().zip(&c).map(|(a, b)| (a - b).powi(2)).sum();
        c = newc;
        if shift <= tol {
            break;
        }
    }
    let (labels, _) = assign(&c);
    (c, labels)
}

#[test]
fn kmeans_moves_several_empty_clusters_to_distinct_samples() {
    // Three blobs, five clusters: two initial centroids are far from every sample, so two
    // clusters are empty after the first assignment; they must land on the two farthest
    // samples, not both on the farthest one.
    let (x, truth) = blobs(13, 3, 30, 2);
    let n = truth.len();
    let init = [
        x[0], x[1], x[2], x[3], x[4], x[5], 1000.0, 1000.0, -1000.0, 1000.0,
    ];
    let xt = tensor(&x, &[n, 2]);
    let mut one = KMeans::new(5)
        .with_init(tensor(&init, &[5, 2]))
        .with_max_iter(1);
    one.fit(&xt).unwrap();
    let c1 = read(one.centers().unwrap());
    let (c1_cpu, _) = cpu_lloyd_iters(&x, n, 2, &init, 0.0, 1);
    assert_close(&c1, &c1_cpu, 1e-3, 1e-5);
    let (a, b) = (&c1[6..8], &c1[8..10]);
    assert!(
        (a[0] - b[0]).abs() + (a[1] - b[1]).abs() > 1e-3,
        "both empty clusters moved to the same sample: {a:?} {b:?}"
    );
    // The whole fit still follows the CPU reference.
    let mut km = KMeans::new(5)
        .with_init(tensor(&init, &[5, 2]))
        .with_tol(0.0);
    km.fit(&xt).unwrap();
    let (c, labels) = cpu_lloyd(&x, n, 2, &init, 0.0);
    assert_close(&read(km.centers().unwrap()), &c, 1e-3, 1e-5);
    let got: Vec<usize> = read_u32(km.labels().unwrap())
        .iter()
        .map(|&l| l as usize)
        .collect();
    assert_eq!(got, labels);
    let mut counts = [0usize; 5];
    for &l in &labels {
        counts[l] += 1;
    }
    assert!(counts.iter().all(|&c| c > 0), "counts {counts:?}");
}

#[test]
fn kmeans_relocates_empty_clusters_like_cpu_lloyd() {
    // Three blobs; the third initial centroid is far from every sample, so its cluster is
    // empty after the first assignment and must be relocated to the farthest sample.
    let (x, truth) = blobs(12, 3, 30, 2);
    let n = truth.len();
    let init = [x[0], x[1], x[2], x[3], 1000.0, 1000.0];
    let mut km = KMeans::new(3)
        .with_init(tensor(&init, &[3, 2]))
        .with_tol(0.0);
    let mut shifts = Vec::new();
    km.fit_with(&tensor(&x, &[n, 2]), |_, _, s| shifts.push(s))
        .unwrap();
    let (c, labels) = cpu_lloyd(&x, n, 2, &init, 0.0);
    assert_eq!(
        read_u32(km.labels().unwrap())
            .iter()
            .map(|&l| l as usize)
            .collect::<Vec<_>>(),
        labels
    );
    assert_close(&read(km.centers().unwrap()), &c, 1e-3, 1e-5);
    // The relocation happened: the far centroid moved by about 1000 * sqrt(2) at once.
    assert!(shifts[0] > 1e6, "first shift {}", shifts[0]);
    // And the result is the blob partition: 3 clusters, each non-empty.
    let mut counts = [0usize; 3];
    for &l in &labels {
        counts[l] += 1;
    }
    assert_eq!(counts, [30, 30, 30]);
    // Bad init shapes and values.
    let xt = tensor(&x, &[n, 2]);
    assert!(matches!(
        KMeans::new(3)
            .with_init(tensor(&[0.0; 4], &[2, 2]))
            .fit(&xt),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        KMeans::new(1)
            .with_init(tensor(&[f32::NAN, 0.0], &[1, 2]))
            .fit(&xt),
        Err(Error::InvalidArgument { .. })
    ));
}
