//! Loops unrolled in the WGSL source before it is compiled.
//!
//! naga writes a WGSL `for` loop as a general SPIR-V loop, and NVIDIA's
//! Vulkan driver does not unroll it: a function-local array indexed by the
//! loop's counter is then kept in local (off-chip) memory, not registers.
//! Measured on an H200, the top-k attention forward ran in 17.5 ms per step
//! with its running top-k list in such an array and 5.7 ms with the same
//! code written out slot by slot. So a loop marked
//!
//! ```wgsl
//! // unroll
//! for (var n = 0u; n < VECS; n++) {
//!     acc[n] += w * v[n];
//! }
//! ```
//!
//! is replaced by one block per value of its counter, in which the counter
//! is a `const` (`{ const n = 0u; acc[n] += w * v[n]; } { const n = 1u; … }`),
//! so every index is a constant. The bound is a `u32` literal or a
//! module-scope `const` (after specialisation), evaluated here; the loop
//! must count from `0u` by one and contain no `break` or `continue`.
//! Marked loops may nest.

use std::collections::HashMap;

const MARKER: &str = "// unroll";

/// The source with every marked loop unrolled (unchanged without markers).
pub fn unroll(source: &str) -> Result<String, String> {
    let consts = module_consts(source);
    let lines: Vec<&str> = source.lines().collect();
    let mut out = String::with_capacity(source.len());
    expand(&lines, &consts, &mut out)?;
    Ok(out)
}

/// Whether `source` has a marked loop.
pub fn has_marker(source: &str) -> bool {
    source.lines().any(is_marker)
}

fn is_marker(line: &str) -> bool {
    line.trim()
        .strip_prefix(MARKER)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

fn expand(lines: &[&str], consts: &HashMap<String, u64>, out: &mut String) -> Result<(), String> {
    let mut i = 0;
    while i < lines.len() {
        if !is_marker(lines[i]) {
            out.push_str(lines[i]);
            out.push('\n');
            i += 1;
            continue;
        }
        let header = lines
            .get(i + 1)
            .ok_or("`// unroll` on the last line: no loop follows")?;
        let (counter, bound) = parse_header(header)?;
        let count = evaluate(&bound, consts)?;
        let end = closing_line(lines, i + 1)?;
        let body = &lines[i + 2..end];
        for line in body {
            if words(code_of(line)).any(|w| w == "break" || w == "continue") {
                return Err(format!(
                    "unrolled loop over `{counter}` has a break or continue: {line}"
                ));
            }
        }
        let mut inner = String::new();
        expand(body, consts, &mut inner)?;
        let indent = &header[..header.len() - header.trim_start().len()];
        for value in 0..count {
            out.push_str(&format!(
                "{indent}{{\n{indent}    const {counter} = {value}u;\n"
            ));
            out.push_str(&inner);
            out.push_str(&format!("{indent}}}\n"));
        }
        i = end + 1;
    }
    Ok(())
}

/// `for (var n = 0u; n < BOUND; n++) {` → (n, BOUND).
fn parse_header(line: &str) -> Result<(String, String), String> {
    let bad = || {
        format!(
            "`// unroll` needs `for (var n = 0u; n < BOUND; n++) {{`, got: {}",
            line.trim()
        )
    };
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = compact
        .strip_prefix("for(var")
        .and_then(|s| s.strip_suffix("){"))
        .ok_or_else(bad)?;
    let parts: Vec<&str> = inner.split(';').collect();
    let [init, test, step] = parts[..] else {
        return Err(bad());
    };
    let counter = init.strip_suffix("=0u").ok_or_else(bad)?;
    let bound = test
        .strip_prefix(counter)
        .and_then(|s| s.strip_prefix('<'))
        .ok_or_else(bad)?;
    if counter.is_empty() || step != format!("{counter}++") {
        return Err(bad());
    }
    Ok((counter.to_string(), bound.to_string()))
}

/// The index of the line that closes the brace opened on line `open`.
fn closing_line(lines: &[&str], open: usize) -> Result<usize, String> {
    let mut depth = 0i64;
    for (i, line) in lines.iter().enumerate().skip(open) {
        for c in code_of(line).chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
        }
        if depth == 0 {
            return Ok(i);
        }
    }
    Err(format!(
        "unrolled loop `{}` is never closed",
        lines[open].trim()
    ))
}

fn code_of(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
}

/// Module-scope `const NAME[: u32] = EXPR;` declarations whose value is an
/// integer expression (others, e.g. f32 constants, are skipped).
fn module_consts(source: &str) -> HashMap<String, u64> {
    let mut consts = HashMap::new();
    for line in source.lines() {
        let Some(rest) = line.strip_prefix("const ") else {
            continue;
        };
        let Some((lhs, rhs)) = code_of(rest).split_once('=') else {
            continue;
        };
        let name = lhs.split(':').next().unwrap_or("").trim().to_string();
        let expr = rhs.trim().trim_end_matches(';');
        if let Ok(value) = evaluate(expr, &consts) {
            consts.insert(name, value);
        }
    }
    consts
}

/// An integer expression of literals (`4u`, `4`), earlier constants, + - * / %
/// and parentheses.
fn evaluate(expr: &str, consts: &HashMap<String, u64>) -> Result<u64, String> {
    let tokens = tokenize(expr)?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        consts,
    };
    let value = parser.sum()?;
    if parser.at != tokens.len() {
        return Err(format!("cannot evaluate `{expr}` as an integer"));
    }
    Ok(value)
}

#[derive(Debug, PartialEq)]
enum Token {
    Number(u64),
    Name(String),
    Op(char),
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_digit() {
            let mut digits = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            if chars.peek().is_some_and(|&s| s == 'u' || s == 'i') {
                chars.next();
            }
            tokens.push(Token::Number(
                digits.parse().map_err(|_| format!("`{expr}`"))?,
            ));
        } else if c.is_alphabetic() || c == '_' {
            let mut name = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_alphanumeric() || **d == '_') {
                name.push(d);
                chars.next();
            }
            tokens.push(Token::Name(name));
        } else if "+-*/%()".contains(c) {
            tokens.push(Token::Op(c));
            chars.next();
        } else {
            return Err(format!("cannot evaluate `{expr}` as an integer"));
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    consts: &'a HashMap<String, u64>,
}

impl Parser<'_> {
    fn op(&mut self, ops: &str) -> Option<char> {
        match self.tokens.get(self.at) {
            Some(Token::Op(c)) if ops.contains(*c) => {
                self.at += 1;
                Some(*c)
            }
            _ => None,
        }
    }

    fn sum(&mut self) -> Result<u64, String> {
        let mut value = self.product()?;
        while let Some(op) = self.op("+-") {
            let rhs = self.product()?;
            value = match op {
                '+' => value.checked_add(rhs),
                _ => value.checked_sub(rhs),
            }
            .ok_or("integer overflow in a loop bound")?;
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<u64, String> {
        let mut value = self.atom()?;
        while let Some(op) = self.op("*/%") {
            let rhs = self.atom()?;
            value = match op {
                '*' => value.checked_mul(rhs),
                '/' => value.checked_div(rhs),
                _ => value.checked_rem(rhs),
            }
            .ok_or("integer overflow or division by zero in a loop bound")?;
        }
        Ok(value)
    }

    fn atom(&mut self) -> Result<u64, String> {
        if self.op("(").is_some() {
            let value = self.sum()?;
            return self
                .op(")")
                .map(|_| value)
                .ok_or_else(|| "unbalanced ( in a loop bound".to_string());
        }
        let token = self.tokens.get(self.at).ok_or("a loop bound ends early")?;
        self.at += 1;
        match token {
            Token::Number(n) => Ok(*n),
            Token::Name(name) => {
                self.consts.get(name).copied().ok_or_else(|| {
                    format!("loop bound `{name}` is not a module-scope integer const")
                })
            }
            Token::Op(c) => Err(format!("unexpected `{c}` in a loop bound")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unroll;

    #[test]
    fn a_marked_loop_becomes_one_block_per_counter_value() {
        let source = "const N: u32 = 16u / 8u;\nfn f() {\n    // unroll\n    for (var n = 0u; n < N; n++) {\n        a[n] = 1.0; // {\n    }\n    b();\n}\n";
        let out = unroll(source).unwrap();
        assert_eq!(
            out,
            "const N: u32 = 16u / 8u;\nfn f() {\n    {\n        const n = 0u;\n        a[n] = 1.0; // {\n    }\n    {\n        const n = 1u;\n        a[n] = 1.0; // {\n    }\n    b();\n}\n"
        );
    }

    #[test]
    fn nested_loops_and_expressions_of_constants() {
        let source = "const A = 3u;\nconst B: u32 = (A * 4u + 2u - 1u) % 5u;\n// unroll\nfor (var i = 0u; i < 2u; i++) {\n    // unroll: why\n    for (var j = 0u; j < B; j++) {\n        x(i, j);\n    }\n}\n";
        let out = unroll(source).unwrap();
        assert_eq!(out.matches("x(i, j);").count(), 2 * 3, "{out}");
        assert_eq!(out.matches("const j = 2u;").count(), 2, "{out}");
    }

    #[test]
    fn loops_it_cannot_unroll_are_errors() {
        let cases = [
            ("// unroll\nfor (var i = 1u; i < 4u; i++) {\n}\n", "needs"),
            (
                "// unroll\nfor (var i = 0u; i < n; i++) {\n}\n",
                "not a module-scope",
            ),
            (
                "// unroll\nfor (var i = 0u; i < 4u; i++) {\n    break;\n}\n",
                "break",
            ),
            (
                "// unroll\nfor (var i = 0u; i < 4u; i++) {\n",
                "never closed",
            ),
            ("// unroll\n", "no loop follows"),
        ];
        for (source, expected) in cases {
            let err = unroll(source).unwrap_err();
            assert!(err.contains(expected), "{source}: {err}");
        }
    }
}
