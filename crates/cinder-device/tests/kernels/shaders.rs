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
        let src = k.source().unwrap_or_else(|e| panic!("{e}"));
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

/// The value of WGSL `const` or `override` (its default) `name` in `module`, when it is an
/// integer or bool literal.
fn literal(module: &naga::Module, name: &str) -> Option<u64> {
    let expr = module
        .constants
        .iter()
        .find(|(_, c)| c.name.as_deref() == Some(name))
        .map(|(_, c)| c.init)
        .or_else(|| {
            module
                .overrides
                .iter()
                .find(|(_, o)| o.name.as_deref() == Some(name))
                .and_then(|(_, o)| o.init)
        })?;
    match module.global_expressions[expr] {
        naga::Expression::Literal(naga::Literal::U32(v)) => Some(v as u64),
        naga::Expression::Literal(naga::Literal::I32(v)) => u64::try_from(v).ok(),
        naga::Expression::Literal(naga::Literal::AbstractInt(v)) => u64::try_from(v).ok(),
        naga::Expression::Literal(naga::Literal::Bool(b)) => Some(b as u64),
        _ => None,
    }
}

/// Host and shader agree: every constant both sides use has the same value, and every
/// kernel's entry point, specialized with its override constants as a pipeline is, has the
/// workgroup size the host computes its grid for.
#[test]
fn host_and_shader_constants_agree() {
    let kernels = all_kernels();
    for c in cinder_device::ops::contracts() {
        let k = kernels
            .iter()
            .find(|k| k.family == c.family)
            .unwrap_or_else(|| panic!("no kernel of family {}", c.family));
        let src = k.source().unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let got = literal(&module, c.name)
            .unwrap_or_else(|| panic!("shaders/{}.wgsl has no constant {}", c.family, c.name));
        assert_eq!(
            got, c.value,
            "{}::{}: shader {got}, host {}",
            c.family, c.name, c.value
        );
    }
    for k in &kernels {
        let src = k.source().unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap();
        let mut pc = naga::back::PipelineConstants::default();
        for (name, v) in &k.constants {
            pc.insert(name.to_string(), *v);
        }
        let (special, _) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((naga::ShaderStage::Compute, k.entry)),
            &pc,
        )
        .unwrap();
        let ep = special
            .entry_points
            .iter()
            .find(|e| e.name == k.entry)
            .unwrap();
        let [x, y, z] = ep.workgroup_size;
        assert_eq!(
            (x, y, z),
            k.workgroup,
            "{}: the shader's workgroup size differs from the host's",
            k.name()
        );
    }
}

/// A substitution touches nothing but its placeholder: a placeholder the shader lacks, a
/// text holding a placeholder, and a placeholder left unfilled are each an error naming the
/// kernel, as is a shader that does not compile.
#[test]
fn template_placeholders_are_checked() {
    use cinder_device::{Error, Kernel};
    let ok = Kernel::new("elementwise", "unary", 1, 1)
        .with_subst("UNARY_OP", "x")
        .with_subst("BINARY_OP", "a");
    assert!(ok.source().unwrap().contains("out1[i] = x;"));
    let bad = [
        Kernel::new("elementwise", "unary", 1, 1).with_subst("UNARY_OP", "x"),
        ok.clone().with_subst("a + b", "a"),
        Kernel::new("elementwise", "unary", 1, 1)
            .with_subst("UNARY_OP", "{{BINARY_OP}}")
            .with_subst("BINARY_OP", "a"),
        Kernel::new("nonesuch", "main", 0, 1),
    ];
    for k in bad {
        assert!(
            matches!(k.source(), Err(Error::ShaderCompile { .. })),
            "{}",
            k.name()
        );
    }
    // A shader that parses but does not compile, through the device: ShaderCompile too.
    let broken = Kernel::new("elementwise", "unary", 1, 1)
        .with_subst("UNARY_OP", "undefined_function(x)")
        .with_subst("BINARY_OP", "a");
    let layout =
        cinder_device::kernel::immediate_layout(&broken.name(), &broken.source().unwrap(), "unary");
    assert!(matches!(layout, Err(Error::ShaderCompile { .. })));
}
