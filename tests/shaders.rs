//! Every `shaders/*.wgsl` parses and validates with naga and stays inside
//! WebGPU's default limits, so the browser build runs it unchanged:
//! ≤ 8 storage buffers and ≤ 12 uniform buffers per stage, ≤ 16 KiB of
//! workgroup memory, ≤ 256 invocations per workgroup (each dimension within
//! 256, 256, 64). The native-only tensor-core kernel may use the workgroup
//! memory the device asks for where it runs it.

use std::path::PathBuf;

use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{AddressSpace, ShaderStage};
use samnet_core::gpu::{LIBRARIES, Shader};

fn shader_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shaders")
}

fn shader_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shader_dir())
        .expect("shaders/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    files
}

/// What a browser allows: f16 only where the file enables it (the runtime
/// picks the file's fallback when the adapter lacks it), likewise subgroups.
/// The native-only cooperative matrices (with the subgroup built-ins the
/// kernel using them needs) only where the file enables them.
fn capabilities(source: &str) -> Capabilities {
    let mut caps = Capabilities::empty();
    if source.contains("enable f16;") {
        caps |= Capabilities::SHADER_FLOAT16;
    }
    if source.contains("enable subgroups;") {
        caps |= Capabilities::SUBGROUP;
    }
    if source.contains("enable wgpu_cooperative_matrix;") {
        caps |= Capabilities::COOPERATIVE_MATRIX | Capabilities::SUBGROUP;
    }
    caps
}

/// Every shader file the core embeds: the kernels, the feature-gated ones and
/// the libraries they include.
fn embedded_shaders() -> Vec<Shader> {
    let mut shaders = samnet_core::ops::all_shaders();
    shaders.extend(samnet_core::ops::feature_gated_shaders());
    shaders.extend(LIBRARIES);
    shaders
}

/// Each file as the runtime compiles it (its `// #include` lines replaced);
/// a library validates alone.
#[test]
fn every_shader_validates_within_webgpu_default_limits() {
    let mut failures = Vec::new();
    for shader in embedded_shaders() {
        match shader.with_libraries() {
            Ok(source) => check_source(shader.name, &source, &mut failures),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "shader problems:\n{}",
        failures.join("\n")
    );
}

/// Float literals a browser accepts: Chrome's Tint refuses an f32 literal
/// whose value exceeds f32::MAX (naga silently rounds it, so validation
/// alone misses it; `3.40282347e38` broke the browser once).
#[test]
fn every_float_literal_fits_f32() {
    let mut failures = Vec::new();
    for path in shader_files() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).unwrap();
        for (line_no, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for literal in float_literals(code) {
                let value: f64 = literal.trim_end_matches(['f', 'h']).parse().unwrap();
                if value.abs() > f32::MAX as f64 {
                    failures.push(format!(
                        "{name}:{}: {literal} exceeds f32::MAX",
                        line_no + 1
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Decimal float literals (with a point or an exponent) in one line of WGSL.
fn float_literals(code: &str) -> Vec<&str> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_number = bytes[i].is_ascii_digit()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts_number || code[i..].starts_with("0x") {
            i += 1;
            continue;
        }
        let start = i;
        let mut is_float = false;
        while i < bytes.len() {
            match bytes[i] {
                b'0'..=b'9' => {}
                b'.' => is_float = true,
                b'e' | b'E' => {
                    is_float = true;
                    if i + 1 < bytes.len() && matches!(bytes[i + 1], b'+' | b'-') {
                        i += 1;
                    }
                }
                b'f' | b'h' => {
                    is_float = true;
                    i += 1;
                    break;
                }
                _ => break,
            }
            i += 1;
        }
        if is_float {
            found.push(&code[start..i]);
        }
    }
    found
}

#[test]
fn float_literals_are_found() {
    assert_eq!(
        float_literals("x = -3.4e38 + 1.0f * a1.5 + 2e-3 + 0x1fu + 7u + 65504.0;"),
        ["3.4e38", "1.0f", "2e-3", "65504.0"]
    );
}

/// The f16 variants the runtime compiles where the adapter has SHADER_F16
/// obey the same limits as the files as written.
#[test]
fn mixed_precision_variants_validate_within_webgpu_default_limits() {
    use samnet_core::ops::{matmul, matmul_coop, precision};
    let variant = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let half_b: Vec<(&str, &str)> = matmul::HALF_OPERANDS
        .into_iter()
        .chain([matmul::HALF_B])
        .collect();
    let mut failures = Vec::new();
    for (shader, consts) in [
        (matmul::SHADER, variant(&matmul::HALF_OPERANDS)),
        (matmul::SHADER, variant(&half_b)),
        (precision::SHADER, variant(&[precision::HALF])),
        (matmul_coop::SHADER, variant(&[matmul_coop::HALF_B])),
    ] {
        let source = shader.specialize(&consts).unwrap();
        let names_f16 = consts.iter().any(|(_, v)| v == "f16");
        assert_eq!(source.contains("enable f16;"), names_f16, "{}", shader.name);
        check_source(
            &format!("{} {consts:?}", shader.name),
            &source,
            &mut failures,
        );
    }
    assert!(
        failures.is_empty(),
        "shader problems:\n{}",
        failures.join("\n")
    );
}

/// Parses and validates `source`, then checks each entry point's limits.
fn check_source(name: &str, source: &str, failures: &mut Vec<String>) {
    let module = match naga::front::wgsl::parse_str(source) {
        Ok(m) => m,
        Err(e) => {
            failures.push(format!("{name}: parse: {}", e.emit_to_string(source)));
            return;
        }
    };
    let info = match Validator::new(ValidationFlags::all(), capabilities(source)).validate(&module)
    {
        Ok(i) => i,
        Err(e) => {
            failures.push(format!("{name}: validate: {}", e.emit_to_string(source)));
            return;
        }
    };
    for (index, ep) in module.entry_points.iter().enumerate() {
        let at = format!("{name}::{}", ep.name);
        if ep.stage != ShaderStage::Compute {
            failures.push(format!("{at}: not a compute entry point"));
            continue;
        }
        if ep.workgroup_size_overrides.is_some() {
            failures.push(format!(
                "{at}: workgroup size must be a const, not an override"
            ));
        }
        let [x, y, z] = ep.workgroup_size;
        if x * y * z > 256 || x > 256 || y > 256 || z > 64 {
            failures.push(format!(
                "{at}: workgroup size {x}×{y}×{z} exceeds 256 invocations"
            ));
        }
        let uses = info.get_entry_point(index);
        let (mut storage, mut uniform, mut workgroup_bytes) = (0, 0, 0u32);
        for (handle, var) in module.global_variables.iter() {
            if uses[handle].is_empty() {
                continue;
            }
            match var.space {
                AddressSpace::Storage { .. } => storage += 1,
                AddressSpace::Uniform => uniform += 1,
                AddressSpace::WorkGroup => {
                    workgroup_bytes += module.types[var.ty].inner.size(module.to_ctx())
                }
                _ => {}
            }
        }
        if storage > 8 {
            failures.push(format!("{at}: {storage} storage buffers > 8"));
        }
        if uniform > 12 {
            failures.push(format!("{at}: {uniform} uniform buffers > 12"));
        }
        // The cooperative-matrix kernel never runs in a browser; the device
        // asks for exactly its workgroup memory where it runs it.
        let workgroup_limit = if source.contains("enable wgpu_cooperative_matrix;") {
            samnet_core::ops::matmul_coop::WORKGROUP_BYTES
        } else {
            16384
        };
        if workgroup_bytes > workgroup_limit {
            failures.push(format!(
                "{at}: {workgroup_bytes} bytes of workgroup memory > {workgroup_limit}"
            ));
        }
    }
}

#[test]
fn every_shader_file_is_compiled_into_the_core() {
    let embedded: Vec<String> = embedded_shaders()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    for path in shader_files() {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        assert!(
            embedded.contains(&stem),
            "shaders/{stem}.wgsl is not embedded by samnet_core::ops"
        );
    }
    for name in &embedded {
        assert!(
            shader_dir().join(format!("{name}.wgsl")).exists(),
            "{name} has no file"
        );
    }
}

/// Each embedded shader entry point also compiles into a pipeline on the test
/// adapter, whose device has exactly WebGPU's default limits.
#[test]
fn every_entry_point_builds_a_pipeline_on_a_default_limits_device() {
    let gpu = samnet_tests::gpu();
    for shader in samnet_core::ops::all_shaders() {
        let source = shader.with_libraries().unwrap();
        let module = naga::front::wgsl::parse_str(&source).expect("parses");
        for ep in &module.entry_points {
            gpu.pipeline(&shader, &ep.name, &[], &[])
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// The tensor-core kernel cannot run here (lavapipe has no cooperative
/// matrices), but naga's SPIR-V writer, which wgpu runs on it where it can,
/// must translate every variant (four transposes, B as f32 or f16; naga 30
/// panics on some cooperative stores and loads; the file is written to avoid
/// them).
#[test]
fn the_tensor_core_kernel_translates_to_spirv() {
    use naga::back::spv;
    use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
    use samnet_core::ops::matmul_coop;
    let variants = matmul_coop::VARIANTS.iter().flat_map(|&(_, ta, tb)| {
        let switches = matmul_coop::transposes(ta, tb);
        [
            switches.to_vec(),
            [&switches[..], &[matmul_coop::HALF_B]].concat(),
        ]
    });
    for consts in variants {
        let consts: Vec<(String, String)> = consts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let source = matmul_coop::SHADER.specialize(&consts).unwrap();
        let module = naga::front::wgsl::parse_str(&source).expect("parses");
        let info = Validator::new(ValidationFlags::all(), capabilities(&source))
            .validate(&module)
            .expect("validates");
        for policy in [
            BoundsCheckPolicy::Restrict,
            BoundsCheckPolicy::ReadZeroSkipWrite,
            BoundsCheckPolicy::Unchecked,
        ] {
            let options = spv::Options {
                bounds_check_policies: BoundsCheckPolicies {
                    index: policy,
                    buffer: policy,
                    image_load: policy,
                    binding_array: policy,
                },
                ..Default::default()
            };
            let words = spv::write_vec(&module, &info, &options, None)
                .unwrap_or_else(|e| panic!("{consts:?} {policy:?}: {e}"));
            assert!(!words.is_empty());
        }
    }
}

/// The device asks for the tensor-core kernel's workgroup memory by the
/// constant in ops/matmul_coop.rs; it must be what the shader declares.
#[test]
fn the_tensor_core_kernel_declares_the_workgroup_memory_the_device_asks_for() {
    use samnet_core::ops::matmul_coop;
    let module = naga::front::wgsl::parse_str(matmul_coop::SHADER.source).expect("parses");
    let bytes: u32 = module
        .global_variables
        .iter()
        .filter(|(_, var)| var.space == AddressSpace::WorkGroup)
        .map(|(_, var)| module.types[var.ty].inner.size(module.to_ctx()))
        .sum();
    assert_eq!(bytes, matmul_coop::WORKGROUP_BYTES);
}
