//! Philox random numbers: a CPU reference, known-answer vectors, split invariance, statistics.

use super::common::*;
use cinder_device::{DeviceTensor, Error};

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32-10 on the CPU.
fn philox(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    for r in 0..10 {
        if r > 0 {
            k[0] = k[0].wrapping_add(0x9E3779B9);
            k[1] = k[1].wrapping_add(0xBB67AE85);
        }
        let (h0, l0) = mulhilo(0xD2511F53, c[0]);
        let (h1, l1) = mulhilo(0xCD9E8D57, c[2]);
        c = [h1 ^ c[1] ^ k[0], l1, h0 ^ c[3] ^ k[1], l0];
    }
    c
}

#[test]
fn cpu_reference_matches_random123_known_answers() {
    assert_eq!(
        philox([0; 4], [0; 2]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        philox([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
}

#[test]
fn gpu_bits_match_cpu_philox() {
    let d = dev();
    let seed = 0x1234_5678_9abc_def0u64;
    let offset = u32::MAX as u64 - 5; // crosses the 32-bit carry of the counter
    let bits = read_u32(&DeviceTensor::random_bits(&d, &[3, 7], seed, offset).unwrap());
    for (e, &b) in bits.iter().enumerate() {
        let ctr = offset + e as u64;
        let want = philox(
            [ctr as u32, (ctr >> 32) as u32, 0, 0],
            [seed as u32, (seed >> 32) as u32],
        )[0];
        assert_eq!(b, want, "element {e}");
    }
    assert_eq!(
        read_u32(&DeviceTensor::random_bits(&d, &[1], 0, 0).unwrap()),
        vec![0x6627e8d5]
    );
}

#[test]
fn same_numbers_whatever_the_split() {
    let d = dev();
    for draw in [
        |d: &_, s: &[usize], o| DeviceTensor::rand_uniform(d, s, -2.0, 3.0, 7, o).unwrap(),
        |d: &_, s: &[usize], o| DeviceTensor::rand_normal(d, s, 1.0, 2.0, 7, o).unwrap(),
        |d: &_, s: &[usize], o| DeviceTensor::rand_bernoulli(d, s, 0.3, 7, o).unwrap(),
    ] {
        let whole = read(&draw(&d, &[10, 100], 5));
        let a = read(&draw(&d, &[400], 5));
        let b = read(&draw(&d, &[6, 100], 405));
        assert_eq!(whole, [a, b].concat());
        assert_eq!(whole, read(&draw(&d, &[1000], 5)), "same seed reproduces");
    }
    let x = read(&DeviceTensor::rand_uniform(&d, &[100], 0.0, 1.0, 1, 0).unwrap());
    let y = read(&DeviceTensor::rand_uniform(&d, &[100], 0.0, 1.0, 2, 0).unwrap());
    assert!(
        x.iter().zip(&y).filter(|(a, b)| a == b).count() < 3,
        "different seeds differ"
    );
}

fn mean_var(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (
        m,
        v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n,
    )
}

#[test]
fn distributions_have_the_right_moments() {
    let d = dev();
    let n = 1 << 20;
    let u = read(&DeviceTensor::rand_uniform(&d, &[n], -1.0, 3.0, 11, 0).unwrap());
    assert!(u.iter().all(|&x| (-1.0..3.0).contains(&x)));
    let (m, v) = mean_var(&u);
    assert!(
        (m - 1.0).abs() < 0.01 && (v - 16.0 / 12.0).abs() < 0.01,
        "{m} {v}"
    );
    let z = read(&DeviceTensor::rand_normal(&d, &[n], 0.5, 2.0, 12, 0).unwrap());
    assert!(z.iter().all(|x| x.is_finite()));
    let (m, v) = mean_var(&z);
    assert!(
        (m - 0.5).abs() < 0.01 && (v.sqrt() - 2.0).abs() < 0.01,
        "{m} {v}"
    );
    let within_1sd = z.iter().filter(|&&x| (x - 0.5).abs() < 2.0).count() as f64 / n as f64;
    assert!((within_1sd - 0.6827).abs() < 0.005, "{within_1sd}");
    let b = read(&DeviceTensor::rand_bernoulli(&d, &[n], 0.3, 13, 0).unwrap());
    assert!(b.iter().all(|&x| x == 0.0 || x == 1.0));
    let (m, _) = mean_var(&b);
    assert!((m - 0.3).abs() < 0.003, "{m}");
}

#[test]
fn large_requests_cover_every_element() {
    let d = dev();
    let n = 256 * 65535 + 17;
    let t = DeviceTensor::rand_bernoulli(&d, &[n], 1.0, 3, 0).unwrap();
    assert_eq!(t.sum_all().unwrap().to_scalar().unwrap(), n as f32);
}

#[test]
fn random_misuse_is_an_error() {
    let d = dev();
    assert!(matches!(
        DeviceTensor::rand_uniform(&d, &[2], 1.0, 0.0, 0, 0),
        Err(Error::InvalidArgument {
            op: "rand_uniform",
            ..
        })
    ));
    assert!(matches!(
        DeviceTensor::rand_normal(&d, &[2], 0.0, -1.0, 0, 0),
        Err(Error::InvalidArgument {
            op: "rand_normal",
            ..
        })
    ));
    assert!(matches!(
        DeviceTensor::rand_bernoulli(&d, &[2], 1.5, 0, 0),
        Err(Error::InvalidArgument {
            op: "rand_bernoulli",
            ..
        })
    ));
}
