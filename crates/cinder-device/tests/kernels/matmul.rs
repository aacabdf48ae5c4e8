//! Matmul against a CPU triple loop.

use super::common::*;

fn cpu(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for kk in 0..k {
                let av = if ta { a[kk * m + i] } else { a[i * k + kk] };
                let bv = if tb { b[j * k + kk] } else { b[kk * n + j] };
                s += av as f64 * bv as f64;
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}

#[test]
fn matmul_with_transposes_matches_cpu() {
    let mut r = rng(10);
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 9),
        (64, 64, 64),
        (65, 31, 130),
    ] {
        for ta in [false, true] {
            for tb in [false, true] {
                let (a, av) = rand_tensor(&mut r, &(if ta { [k, m] } else { [m, k] }));
                let (b, bv) = rand_tensor(&mut r, &(if tb { [n, k] } else { [k, n] }));
                let c = a.matmul_t(&b, ta, tb).unwrap();
                assert_eq!(c.shape(), &[m, n]);
                assert_close(&read(&c), &cpu(&av, &bv, m, k, n, ta, tb), 1e-5, 1e-4);
            }
        }
    }
}

#[test]
fn batched_matmul_with_broadcast_batch() {
    let mut r = rng(11);
    let (a, av) = rand_tensor(&mut r, &[2, 3, 4, 5]);
    let (b, bv) = rand_tensor(&mut r, &[5, 6]);
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.shape(), &[2, 3, 4, 6]);
    let got = read(&c);
    for bi in 0..6 {
        let want = cpu(&av[bi * 20..(bi + 1) * 20], &bv, 4, 5, 6, false, false);
        assert_close(&got[bi * 24..(bi + 1) * 24], &want, 1e-5, 1e-4);
    }
    assert!(a.matmul(&tensor(&[0.0; 12], &[2, 6])).is_err());
}
