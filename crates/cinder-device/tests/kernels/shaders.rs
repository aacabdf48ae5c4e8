//! Every shader and every specialization the crate can dispatch parses and validates with
//! naga. Needs no adapter.

use cinder_device::kernel::{MAX_PARAMS_BYTES, SHADERS};
use cinder_device::ops::all_kernels;

/// Parses and validates `src`, then specializes it for `entry` with `constants` as a
/// pipeline would (naga's override processing, which keeps only that entry point) and
/// compiles the result to SPIR-V, the path wgpu takes on Vulkan.
fn validate(src: &str, what: &str, entry: &str, constants: &[(&str, f64)]) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let mut v = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    let info = v
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let mut pc = naga::back::PipelineConstants::default();
    for (k, val) in constants {
        pc.insert(k.to_string(), *val);
    }
    let (special, special_info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, entry)),
        &pc,
    )
    .unwrap_or_else(|e| panic!("{what}: specializing {constants:?}: {e}"));
    naga::back::spv::write_vec(&special, &special_info, &Default::default(), None)
        .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e}"));
    // Immediates must fit the pipeline layout.
    for (_, var) in module.global_variables.iter() {
        if var.space == naga::AddressSpace::Immediate {
            let size = module.types[var.ty].inner.size(module.to_ctx()) as usize;
            assert!(
                size <= MAX_PARAMS_BYTES,
                "{what}: immediate {:?} is {size} bytes",
                var.name
            );
        }
    }
}

#[test]
fn every_specialization_validates() {
    let kernels = all_kernels();
    assert!(kernels.len() > 50, "{} kernels listed", kernels.len());
    for k in &kernels {
        let src = k.source();
        assert!(!src.is_empty(), "{}::{} has no source", k.family, k.entry);
        validate(
            &src,
            &format!("{}::{}", k.family, k.entry),
            k.entry,
            &k.constants,
        );
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
