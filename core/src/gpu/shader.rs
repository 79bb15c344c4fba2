use std::borrow::Cow;

use super::unroll::{has_marker, unroll};

/// A WGSL file from `shaders/`, embedded at compile time.
///
/// Compile-time switches are ordinary module-scope `const` and `alias`
/// declarations in the file (so every file validates as written); a variant
/// replaces their values, e.g. `("TOPK_MAX", "32u")` rewrites
/// `const TOPK_MAX: u32 = 16u;` and `("Half", "f16")` rewrites
/// `alias Half = f32;`. A variant that names the type f16 gets `enable f16;`.
/// Loops marked `// unroll` are then unrolled (see `gpu/unroll.rs`).
///
/// First, a line `// #include NAME.wgsl` is replaced by that library file of
/// [`LIBRARIES`] (functions several kernels share, kept in one copy); the
/// runtime and the validation tests see the file with it in place.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// `shader_file!("matmul")` embeds `shaders/matmul.wgsl`.
#[macro_export]
macro_rules! shader_file {
    ($name:literal) => {
        $crate::gpu::Shader {
            name: $name,
            source: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shaders/",
                $name,
                ".wgsl"
            )),
        }
    };
}

/// The library files a kernel file may `// #include`.
pub const LIBRARIES: [Shader; 2] = [
    shader_file!("counter_rng"),
    shader_file!("workgroup_reduce"),
];

const INCLUDE: &str = "// #include ";

impl Shader {
    /// The source with the given module-scope constants and aliases
    /// re-valued, then its marked loops unrolled (see `gpu/unroll.rs`).
    pub fn specialize(&self, consts: &[(String, String)]) -> Result<Cow<'static, str>, String> {
        let source = revalue(self.with_libraries()?, consts)?;
        if has_marker(&source) {
            return unroll(&source).map(Cow::Owned);
        }
        Ok(source)
    }

    /// The source with each `// #include NAME.wgsl` line replaced by that
    /// library's source.
    pub fn with_libraries(&self) -> Result<Cow<'static, str>, String> {
        if !self.source.contains(INCLUDE) {
            return Ok(Cow::Borrowed(self.source));
        }
        let mut out = String::with_capacity(self.source.len() + 4096);
        for line in self.source.lines() {
            match line.trim().strip_prefix(INCLUDE) {
                Some(file) => {
                    let library = LIBRARIES
                        .iter()
                        .find(|l| file.strip_suffix(".wgsl") == Some(l.name))
                        .ok_or_else(|| format!("{}: no library {file} to include", self.name))?;
                    out.push_str(library.source);
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        Ok(Cow::Owned(out))
    }
}

fn revalue(
    source: Cow<'static, str>,
    consts: &[(String, String)],
) -> Result<Cow<'static, str>, String> {
    if consts.is_empty() {
        return Ok(source);
    }
    let mut out = String::with_capacity(source.len() + 16);
    let names_f16 = |v: &str| {
        v.split(|c: char| !c.is_alphanumeric() && c != '_')
            .any(|word| word == "f16")
    };
    if consts.iter().any(|(_, v)| names_f16(v)) {
        out.push_str("enable f16;\n");
    }
    let mut found = vec![false; consts.len()];
    for line in source.lines() {
        let mut replaced = false;
        for (i, (name, value)) in consts.iter().enumerate() {
            let declares = |keyword: &str| {
                line.trim_start()
                    .strip_prefix(keyword)
                    .and_then(|rest| rest.strip_prefix(name.as_str()))
                    .is_some_and(|rest| {
                        rest.starts_with(':') || rest.starts_with(' ') || rest.starts_with('=')
                    })
            };
            if declares("const ") || declares("alias ") {
                let head = match line.find('=') {
                    Some(eq) => &line[..eq],
                    None => return Err(format!("{name} has no initializer")),
                };
                out.push_str(head);
                out.push_str("= ");
                out.push_str(value);
                out.push_str(";\n");
                found[i] = true;
                replaced = true;
                break;
            }
        }
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(i) = found.iter().position(|f| !f) {
        return Err(format!(
            "no module-scope `const` or `alias` {} to specialise",
            consts[i].0
        ));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::Shader;

    const SOURCE: &str =
        "alias Half = f32;\nconst TILE: u32 = 16u; // why\nconst TILES: u32 = 2u;\n";

    fn specialize(consts: &[(&str, &str)]) -> Result<String, String> {
        let shader = Shader {
            name: "test",
            source: SOURCE,
        };
        let consts: Vec<(String, String)> = consts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        shader.specialize(&consts).map(|s| s.into_owned())
    }

    #[test]
    fn constants_and_aliases_are_revalued_by_exact_name() {
        let out = specialize(&[("TILE", "32u")]).unwrap();
        assert_eq!(
            out,
            "alias Half = f32;\nconst TILE: u32 = 32u;\nconst TILES: u32 = 2u;\n"
        );
        let out = specialize(&[("Half", "f16")]).unwrap();
        assert_eq!(
            out,
            "enable f16;\nalias Half = f16;\nconst TILE: u32 = 16u; // why\nconst TILES: u32 = 2u;\n"
        );
    }

    #[test]
    fn an_include_line_becomes_the_library() {
        let shader = Shader {
            name: "test",
            source: "const A: u32 = 1u;\n  // #include counter_rng.wgsl\nconst B: u32 = 2u;\n",
        };
        let out = shader.with_libraries().unwrap();
        let library = super::LIBRARIES[0].source;
        assert_eq!(
            out,
            format!("const A: u32 = 1u;\n{library}const B: u32 = 2u;\n")
        );
        let unknown = Shader {
            name: "test",
            source: "// #include nowhere.wgsl\n",
        };
        let err = unknown.with_libraries().unwrap_err();
        assert_eq!(err, "test: no library nowhere.wgsl to include");
    }

    #[test]
    fn a_switch_the_file_lacks_is_an_error() {
        let err = specialize(&[("TIL", "1u")]).unwrap_err();
        assert!(err.contains("TIL to specialise"), "{err}");
    }
}
