//! `CINDER_PROFILE=1`: the per-kernel table counts every dispatch under its kernel's label
//! with a positive time. Its own test binary, because the switch is read once per process.

use cinder_device::{Device, DeviceTensor, profile};

#[test]
fn profiling_counts_each_dispatch_under_its_kernel() {
    // SAFETY: the only test of this binary sets the variable before any thread reads it.
    unsafe { std::env::set_var("CINDER_PROFILE", "1") };
    assert!(profile::enabled());
    let dev = Device::new().expect("an adapter (run scripts/setup.sh)");
    let a = DeviceTensor::from_slice(&dev, &vec![1.0f32; 4096], &[64, 64]).unwrap();
    let b = DeviceTensor::from_slice(&dev, &vec![2.0f32; 4096], &[64, 64]).unwrap();
    profile::reset();
    for _ in 0..3 {
        let c = a.add(&b).unwrap();
        let _ = c.matmul(&a).unwrap();
    }
    dev.sync().unwrap();
    let (rows, clock) = profile::report();
    assert!(clock.is_some());
    let add = rows
        .iter()
        .find(|r| r.label == "elementwise::binary [a + b]")
        .unwrap_or_else(|| panic!("no add in {rows:?}"));
    assert_eq!(add.calls, 3);
    assert!(add.seconds > 0.0, "{add:?}");
    let mm: u64 = rows
        .iter()
        .filter(|r| r.label.starts_with("matmul::"))
        .map(|r| r.calls)
        .sum();
    assert_eq!(mm, 3, "{rows:?}");
    let table = profile::table();
    assert!(
        table.contains("| `elementwise::binary [a + b]` | 3 |"),
        "{table}"
    );
    // The figures still come back right while profiling.
    let c = a.add(&b).unwrap().to_vec::<f32>().unwrap();
    assert!(c.iter().all(|&v| v == 3.0));
    profile::reset();
    assert!(profile::report().0.is_empty());
}
