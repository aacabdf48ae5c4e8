//! k-nearest-neighbour selection, the row scatter and both Floyd-Warshall forms against plain
//! Rust references.

use super::common::*;
use cinder_device::DeviceTensor;
use rand::RngExt;

/// f64 Floyd-Warshall of a row-major adjacency matrix (diagonal taken as 0).
fn cpu_floyd(a: &[f32], n: usize) -> Vec<f64> {
    let mut d: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    for i in 0..n {
        d[i * n + i] = 0.0;
    }
    for k in 0..n {
        for i in 0..n {
            for j in 0..n {
                let via = d[i * n + k] + d[k * n + j];
                if via < d[i * n + j] {
                    d[i * n + j] = via;
                }
            }
        }
    }
    d
}

/// A random symmetric graph on `n` vertices in three groups with no edges between groups
/// (so some pairs are unreachable), edge probability `p` inside a group.
fn random_graph(n: usize, p: f64, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    let mut a = vec![f32::INFINITY; n * n];
    for i in 0..n {
        for j in 0..i {
            if i % 3 == j % 3 && r.random_bool(p) {
                let w = r.random_range(0.1f32..5.0);
                a[i * n + j] = w;
                a[j * n + i] = w;
            }
        }
    }
    a
}

#[test]
fn shortest_paths_match_floyd_warshall_with_unreachable_pairs() {
    // 75 is not a multiple of the 32-pivot tile nor of the 4 x 4 min-plus tile.
    for (n, seed) in [(75usize, 1u64), (7, 2), (64, 3)] {
        let a = random_graph(n, 0.12, seed);
        let want: Vec<f32> = cpu_floyd(&a, n).iter().map(|&v| v as f32).collect();
        assert!(want.iter().any(|v| v.is_infinite()));
        let t = tensor(&a, &[n, n]);
        let blocked = read(&t.shortest_paths().unwrap());
        assert_close(&blocked, &want, 1e-5, 1e-5);
        let plain = read(&t.shortest_paths_per_pivot().unwrap());
        assert_close(&plain, &want, 1e-5, 1e-5);
    }
    // Not square, not f32: Err.
    assert!(tensor(&[0.0; 6], &[2, 3]).shortest_paths().is_err());
    let u = DeviceTensor::from_slice(&dev(), &[0u32; 4], &[2, 2]).unwrap();
    assert!(u.shortest_paths_per_pivot().is_err());
}

#[test]
fn knn_select_and_scatter_rows_match_a_sort() {
    let (n, k) = (37usize, 5usize);
    let mut r = rng(4);
    // Values on a coarse grid, so ties happen and the column order decides them.
    let d: Vec<f32> = (0..n * n).map(|_| r.random_range(0..20) as f32).collect();
    let t = tensor(&d, &[n, n]);
    let (idx, val) = t.knn_select(k, true).unwrap();
    let (idx, val) = (read_u32(&idx), read(&val));
    for i in 0..n {
        let mut row: Vec<(f32, u32)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| (d[i * n + j], j as u32))
            .collect();
        row.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for t in 0..k {
            assert_eq!(
                (val[i * k + t], idx[i * k + t]),
                row[t],
                "row {i}, rank {t}"
            );
        }
    }
    // Without skip_self the row's own column competes.
    let (idx0, _) = t.knn_select(1, false).unwrap();
    let idx0 = read_u32(&idx0);
    for i in 0..n {
        let best = (0..n)
            .min_by(|&a, &b| d[i * n + a].partial_cmp(&d[i * n + b]).unwrap())
            .unwrap();
        assert_eq!(idx0[i] as usize, best);
    }
    // Scatter back: fill, the k values, the diagonal.
    let it = DeviceTensor::from_slice(&dev(), &idx, &[n, k]).unwrap();
    let vt = tensor(&val, &[n, k]);
    let dense = read(&it.scatter_rows(&vt, n, -1.0, Some(9.0)).unwrap());
    for i in 0..n {
        for j in 0..n {
            let want = if i == j {
                9.0
            } else {
                (0..k)
                    .find(|&t| idx[i * k + t] as usize == j)
                    .map_or(-1.0, |t| val[i * k + t])
            };
            assert_eq!(dense[i * n + j], want);
        }
    }
    assert!(t.knn_select(0, true).is_err());
    assert!(t.knn_select(n, true).is_err());
    assert!(tensor(&[0.0; 6], &[2, 3]).knn_select(1, true).is_err());
    assert!(vt.scatter_rows(&vt, n, 0.0, None).is_err());
}

/// Timing of both Floyd-Warshall forms on a random graph (release build, by hand:
/// `cargo test --release -p cinder-device --test kernels shortest_paths_timing -- --ignored
/// --nocapture`).
#[test]
#[ignore]
fn shortest_paths_timing() {
    for n in [1000usize, 2000] {
        let a = random_graph(n, 0.01, 5);
        let t = tensor(&a, &[n, n]);
        let s = std::time::Instant::now();
        let d = t.shortest_paths().unwrap();
        let _ = read(&d.narrow(0, 0, 1).unwrap());
        let blocked = s.elapsed().as_secs_f64();
        let plain = if n <= 1000 {
            let s = std::time::Instant::now();
            let d = t.shortest_paths_per_pivot().unwrap();
            let _ = read(&d.narrow(0, 0, 1).unwrap());
            s.elapsed().as_secs_f64()
        } else {
            f64::NAN
        };
        println!("n = {n}: blocked {blocked:.2} s, per pivot {plain:.2} s");
    }
}
