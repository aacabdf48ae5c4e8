//! Every shader and every specialization the crate can dispatch parses and validates with
//! naga. Needs no adapter.

use cinder_device::kernel::{MAX_PARAMS_BYTES, SHADERS};
use cinder_device::ops::all_kernels;

fn validate(src: &str, what: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let mut v = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    let info = v
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    // Immediates must fit the pipeline layout.
    for (h, var) in module.global_variables.iter() {
        if var.space == naga::AddressSpace::Immediate {
            let size = module.types[var.ty].inner.size(module.to_ctx()) as usize;
            assert!(
                size <= MAX_PARAMS_BYTES,
                "{what}: immediate {:?} is {size} bytes",
                var.name
            );
            let _ = h;
        }
    }
    drop(info);
}

#[test]
fn every_specialization_validates() {
    let kernels = all_kernels();
    assert!(kernels.len() > 50, "{} kernels listed", kernels.len());
    for k in &kernels {
        let src = k.source();
        assert!(!src.is_empty(), "{}::{} has no source", k.family, k.entry);
        validate(&src, &format!("{}::{}", k.family, k.entry));
        let module = naga::front::wgsl::parse_str(&src).expect("parsed above");
        assert!(
            module.entry_points.iter().any(|e| e.name == k.entry),
            "{}: no entry point {}",
            k.family,
            k.entry
        );
        for (name, _) in &k.constants {
            assert!(
                module
                    .overrides
                    .iter()
                    .any(|(_, o)| o.name.as_deref() == Some(*name)),
                "{}::{}: no override {name}",
                k.family,
                k.entry
            );
        }
    }
}

#[test]
fn every_shader_file_is_used() {
    let kernels = all_kernels();
    for (family, _) in SHADERS {
        assert!(
            kernels.iter().any(|k| k.family == *family),
            "no kernel uses shaders/{family}.wgsl"
        );
    }
}
