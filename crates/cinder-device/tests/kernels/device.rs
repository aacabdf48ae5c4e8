//! Device-level behaviour: adapter, pooling, batching, errors.

use super::common::*;
use cinder_device::{DType, Device, DeviceOptions, DeviceTensor, Error};

#[test]
fn adapter_and_limits_are_the_adapters_own() {
    let d = dev();
    assert!(
        d.max_binding_bytes() >= 128 << 20,
        "{}",
        d.max_binding_bytes()
    );
    assert!(!d.adapter_info().name.is_empty());
}

#[test]
fn upload_readback_roundtrip_f32_and_u32() {
    let d = dev();
    let t = DeviceTensor::from_slice(&d, &[1.5f32, -2.0, 3.25], &[3]).unwrap();
    assert_eq!(read(&t), vec![1.5, -2.0, 3.25]);
    let u = DeviceTensor::from_slice(&d, &[7u32, 0, u32::MAX], &[3, 1]).unwrap();
    assert_eq!(u.dtype(), DType::U32);
    assert_eq!(read_u32(&u), vec![7, 0, u32::MAX]);
    assert!(matches!(
        u.to_vec::<f32>(),
        Err(Error::DtypeMismatch { .. })
    ));
    let e = DeviceTensor::from_slice(&d, &[] as &[f32], &[0, 3]).unwrap();
    assert_eq!(read(&e), Vec::<f32>::new());
}

#[test]
fn reshape_is_free_and_checked() {
    let t = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let r = t.reshape(&[3, 2]).unwrap();
    assert!(r.same_storage(&t));
    assert!(matches!(
        t.reshape(&[4, 2]),
        Err(Error::ShapeMismatch { op: "reshape", .. })
    ));
    assert!(matches!(
        DeviceTensor::from_slice(&dev(), &[1.0f32], &[2]),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn too_large_is_an_error_not_a_panic() {
    let d = dev();
    let limit = d.max_binding_bytes();
    let n = (limit / 4 + 1) as usize;
    match DeviceTensor::zeros(&d, &[n]) {
        Err(Error::TooLarge { op, bytes, .. }) => {
            assert_eq!(op, "full");
            assert!(bytes > limit);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        DeviceTensor::zeros(&d, &[usize::MAX / 2, 4]),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn pool_reuses_buffers_and_reuse_is_ordered() {
    let d = dev();
    // Chains of ops whose temporaries are recycled while earlier kernels are still pending:
    // the result must be as if every op ran alone.
    let x = tensor(&(0..1000).map(|i| i as f32).collect::<Vec<_>>(), &[1000]);
    let mut y = x.clone();
    for _ in 0..50 {
        y = y.add_scalar(1.0).unwrap().mul_scalar(1.0).unwrap();
    }
    let want: Vec<f32> = (0..1000).map(|i| i as f32 + 50.0).collect();
    assert_eq!(read(&y), want);
    // Upload into a recycled buffer while kernels reading its previous tenant are pending.
    let a = tensor(&[1.0; 64], &[64]);
    let b = a.add_scalar(1.0).unwrap();
    drop(a);
    let c = tensor(&[5.0; 64], &[64]);
    assert_eq!(read(&b), vec![2.0; 64]);
    assert_eq!(read(&c), vec![5.0; 64]);
    assert!(d.memory().live_bytes > 0);
}

#[test]
fn dispatches_share_submits() {
    // A private device: other test threads' readbacks would count on the shared one.
    let d = Device::with_options(&DeviceOptions::default()).unwrap();
    let x = DeviceTensor::from_slice(&d, &[1.0f32; 16], &[16]).unwrap();
    let before = d.dispatch_stats();
    let mut y = x.clone();
    for _ in 0..100 {
        y = y.add_scalar(0.5).unwrap();
    }
    let after = d.dispatch_stats();
    assert_eq!(after.dispatches - before.dispatches, 100);
    assert_eq!(
        after.submits, before.submits,
        "recording alone submits nothing"
    );
    assert_eq!(read(&y), vec![51.0; 16]);
    assert_eq!(
        d.dispatch_stats().submits,
        after.submits + 1,
        "one readback, one submit"
    );
}

#[test]
fn no_matching_adapter_is_a_clear_error() {
    let opts = DeviceOptions {
        adapter: Some("no-such-adapter-anywhere".into()),
        ..Default::default()
    };
    match Device::with_options(&opts) {
        Err(e @ Error::NoAdapter { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("apt-get install") && msg.contains("mesa-vulkan-drivers"),
                "{msg}"
            );
            assert!(msg.contains("no-such-adapter-anywhere"), "{msg}");
        }
        other => panic!("expected NoAdapter, got {other:?}"),
    }
    let bad = DeviceOptions {
        backend: Some("directx9".into()),
        ..Default::default()
    };
    assert!(matches!(
        Device::with_options(&bad),
        Err(Error::NoAdapter { .. })
    ));
}

#[test]
fn hundreds_of_uploads_without_a_readback_all_land() {
    let d = dev();
    let tensors: Vec<DeviceTensor> = (0..300)
        .map(|i| DeviceTensor::from_slice(&d, &[i as f32; 33], &[33]).unwrap())
        .collect();
    for (i, t) in tensors.iter().enumerate() {
        assert_eq!(read(t), vec![i as f32; 33], "upload {i}");
    }
}

#[test]
fn memory_is_flat_across_repeated_steps() {
    // A private device, so other test threads do not move its counters.
    let d = Device::with_options(&DeviceOptions::default()).unwrap();
    let w = DeviceTensor::full(&d, &[64, 64], 0.01).unwrap();
    let x = DeviceTensor::full(&d, &[32, 64], 1.0).unwrap();
    let step = || {
        let h = x.matmul(&w).unwrap().relu().unwrap();
        let y = h.matmul_t(&w, false, true).unwrap().add(&x).unwrap();
        y.sum_all().unwrap()
    };
    let baseline = d.memory().live_bytes;
    let mut after_warmup = None;
    for i in 0..200 {
        drop(step());
        if i == 9 {
            d.sync().unwrap();
            after_warmup = Some(d.memory());
        }
    }
    d.sync().unwrap();
    let end = d.memory();
    assert_eq!(
        end.live_bytes, baseline,
        "every temporary went back to the pool"
    );
    assert_eq!(
        end.pooled_bytes,
        after_warmup.unwrap().pooled_bytes,
        "the pool stopped growing after warm-up"
    );
    assert_eq!(step().to_scalar().unwrap(), step().to_scalar().unwrap());
}

/// Readbacks from 8 threads sharing the default device all succeed with the right values
/// (the map callback of one thread's readback may run in another thread's poll).
#[test]
fn readbacks_from_many_threads_all_succeed() {
    const THREADS: usize = 8;
    const READS: usize = 1000;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let x = tensor(&[t as f32, 1.0, 2.0], &[3]);
                let mut failures = Vec::new();
                for i in 0..READS {
                    let y = x.add_scalar(i as f32).unwrap();
                    match y.to_vec::<f32>() {
                        Ok(v) if v == vec![t as f32 + i as f32, 1.0 + i as f32, 2.0 + i as f32] => {
                        }
                        other => failures.push(format!("thread {t} read {i}: {other:?}")),
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("no panic"))
        .collect();
    println!(
        "{THREADS} threads, {} readbacks, {} failures",
        THREADS * READS,
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A dispatch the device cannot run is refused before it is recorded (so the work recorded
/// before it is not lost); and when the device does reject a submitted command buffer, every
/// tensor it was to compute reads back as `Err`, never stale data, ops reading them fail,
/// and the device goes on working.
#[test]
fn rejected_work_is_an_error_and_the_device_stays_usable() {
    use cinder_device::{Kernel, Params};
    // A private device: the rejected buffer below must not reach the shared pool.
    let dev = Device::new().expect("an adapter");
    let a = DeviceTensor::from_slice(&dev, &[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let before = a.add_scalar(1.0).unwrap();
    let k = Kernel::new("elementwise", "fill", 0, 1)
        .with_subst("UNARY_OP", "x")
        .with_subst("BINARY_OP", "a");
    let out = DeviceTensor::uninit(&dev, &[3], cinder_device::DType::F32).unwrap();
    let p = Params::new().usize(3).f32(0.0).f32(0.0).u32(0);
    assert!(matches!(
        dev.dispatch(&k, &[], &[&out], &p, (70_000, 1, 1)),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(before.to_vec::<f32>().unwrap(), vec![2.0, 3.0, 4.0]);

    // A command buffer the device rejects: one of its inputs is destroyed before the submit.
    let x = DeviceTensor::from_slice(&dev, &[1.0f32, 2.0], &[2]).unwrap();
    let y = DeviceTensor::from_slice(&dev, &[5.0f32, 6.0], &[2]).unwrap();
    let good = y.mul_scalar(2.0).unwrap(); // recorded into the same command buffer
    let bad = x.add_scalar(1.0).unwrap();
    x.buffer().destroy();
    dev.flush();
    for t in [&bad, &good] {
        match t.to_vec::<f32>() {
            Err(Error::DeviceLost(msg)) => assert!(msg.contains("rejected"), "{msg}"),
            other => panic!("expected DeviceLost, got {other:?}"),
        }
    }
    assert!(matches!(bad.add_scalar(1.0), Err(Error::DeviceLost(_))));
    // The device works on: new work, and tensors computed before the rejected submit.
    let z = DeviceTensor::from_slice(&dev, &[1.0f32, 2.0], &[2]).unwrap();
    assert_eq!(
        z.add_scalar(1.0).unwrap().to_vec::<f32>().unwrap(),
        vec![2.0, 3.0]
    );
    assert_eq!(before.to_vec::<f32>().unwrap(), vec![2.0, 3.0, 4.0]);
    assert!(dev.sync().is_ok());
}

/// Allocating past the memory budget is `Error::OutOfMemory` before the driver is asked
/// (lavapipe under `ulimit -v` crashed instead); the pool is released before giving up, and
/// freed memory can be allocated again.
#[test]
fn allocations_past_the_memory_budget_are_out_of_memory() {
    let opts = DeviceOptions {
        memory_limit: Some(64 << 20),
        ..DeviceOptions::default()
    };
    let dev = Device::with_options(&opts).unwrap();
    assert_eq!(dev.memory_budget(), Some(64 << 20));
    let mut held = Vec::new();
    let err = loop {
        match DeviceTensor::zeros(&dev, &[1 << 20]) {
            Ok(t) => held.push(t),
            Err(e) => break e,
        }
        assert!(held.len() < 64, "the budget was not enforced");
    };
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    assert_eq!(held.len(), 16, "16 of 4 MiB fill 64 MiB");
    drop(held);
    // The 16 freed buffers sit in the pool; a tensor of another size class needs them freed.
    let big = DeviceTensor::zeros(&dev, &[12 << 20]).unwrap();
    assert_eq!(big.to_vec::<f32>().unwrap().len(), 12 << 20);
    assert_eq!(cinder_device::device::parse_bytes("2G"), Some(2 << 30));
    assert_eq!(cinder_device::device::parse_bytes("512k"), Some(512 << 10));
    assert_eq!(cinder_device::device::parse_bytes("x"), None);
}

/// Host parameters are checked against the struct the kernel's entry point reads, word by
/// word: a missing field, an extra one or a float where the shader reads an integer is an
/// error naming the kernel, before anything is recorded.
#[test]
fn parameters_that_do_not_match_the_shader_struct_are_refused() {
    use cinder_device::{Kernel, Params};
    let k = Kernel::new("elementwise", "fill", 0, 1)
        .with_subst("UNARY_OP", "x")
        .with_subst("BINARY_OP", "a");
    let out = DeviceTensor::uninit(&dev(), &[3], DType::F32).unwrap();
    let right = Params::new().usize(3).f32(1.5).f32(0.0).u32(0);
    dev().dispatch(&k, &[], &[&out], &right, (1, 1, 1)).unwrap();
    assert_eq!(read(&out), vec![1.5; 3]);
    for wrong in [
        Params::new().usize(3).f32(1.5).f32(0.0),
        Params::new().usize(3).f32(1.5).f32(0.0).u32(0).u32(0),
        Params::new().f32(3.0).f32(1.5).f32(0.0).u32(0),
    ] {
        match dev().dispatch(&k, &[], &[&out], &wrong, (1, 1, 1)) {
            Err(Error::InvalidArgument { msg, .. }) => {
                assert!(msg.contains("reads immediates"), "{msg}")
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
}
