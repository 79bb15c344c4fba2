use std::borrow::Cow;

/// A WGSL file from `shaders/`, embedded at compile time.
///
/// Compile-time switches are ordinary module-scope `const` declarations in the
/// file (so every file validates on its own); a variant replaces their values,
/// e.g. `("TOPK_MAX", "32u")` rewrites `const TOPK_MAX: u32 = 16u;`.
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

impl Shader {
    /// The source with the given module-scope constants re-valued.
    pub fn specialize(&self, consts: &[(String, String)]) -> Result<Cow<'static, str>, String> {
        if consts.is_empty() {
            return Ok(Cow::Borrowed(self.source));
        }
        let mut out = String::with_capacity(self.source.len());
        let mut found = vec![false; consts.len()];
        for line in self.source.lines() {
            let mut replaced = false;
            for (i, (name, value)) in consts.iter().enumerate() {
                let decl = format!("const {name}");
                if let Some(rest) = line.trim_start().strip_prefix(&decl)
                    && (rest.starts_with(':') || rest.starts_with(' ') || rest.starts_with('='))
                {
                    let head = match line.find('=') {
                        Some(eq) => &line[..eq],
                        None => return Err(format!("const {name} has no initializer")),
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
                "no module-scope `const {}` to specialise",
                consts[i].0
            ));
        }
        Ok(Cow::Owned(out))
    }
}
