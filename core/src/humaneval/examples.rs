//! The examples a HumanEval prompt states in its docstring (`>>> f(1)` and
//! the next line, `f(1) == 1`, `f(1) ==> 1`, `f(1) => 1`, `f(1) ➞ 1`,
//! `f(1) = 1`, `f(1) should return 1.`): what a programmer checks a body
//! against before the hidden tests. A sampler that draws several candidates
//! may run them to choose one, as CodeT and AlphaCode filter with the
//! problem statement's examples; the problem's tests stay unseen.

use super::Problem;

/// One stated example: a call of the entry point and the Python expression
/// of what it should return.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub call: String,
    pub expected: String,
}

/// What may stand between a call and its value, longest first so that `==>`
/// is not read as `==` followed by `>`.
const SEPARATORS: [&str; 7] = ["==>", "==", "=>", "➞", "->", "should return", "="];

/// The prompt's examples of its entry point, in order. A line whose value
/// is not there (`f(x) that returns …`) is not an example; one whose value
/// or arguments are prose (`is_happy(a) => False`) is found here and left
/// out when it runs ([`examples_program`]).
pub fn examples(problem: &Problem) -> Vec<Example> {
    let lines: Vec<&str> = problem.prompt.lines().map(str::trim).collect();
    let body_start = lines
        .iter()
        .position(|l| l.starts_with(&format!("def {}(", problem.entry_point)))
        .map_or(0, |i| i + 1);
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(body_start) {
        let doctest = line.strip_prefix(">>>").map(str::trim);
        let Some((call, rest)) = entry_call(doctest.unwrap_or(line), &problem.entry_point) else {
            continue;
        };
        let expected = if rest.is_empty() && doctest.is_some() {
            lines
                .get(i + 1)
                .filter(|next| !next.is_empty() && !next.starts_with(">>>"))
                .map(|next| next.to_string())
        } else {
            value_after_separator(rest)
        };
        // A value stated through the function itself is a definition.
        let expected = expected.filter(|e| entry_call(e, &problem.entry_point).is_none());
        if let Some(expected) = expected {
            found.push(Example {
                call: call.to_string(),
                expected,
            });
        }
    }
    found
}

/// The first call of `entry` in `line` (the name at a word's start, up to
/// its closing parenthesis) and the trimmed text after it.
fn entry_call<'a>(line: &'a str, entry: &str) -> Option<(&'a str, &'a str)> {
    let opening = format!("{entry}(");
    let start = line.match_indices(&opening).map(|(i, _)| i).find(|&i| {
        !line[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
    })?;
    let end = start + opening.len() + closing_paren(&line[start + opening.len()..])?;
    Some((&line[start..end], line[end..].trim()))
}

/// The length up to and including the parenthesis that closes one already
/// open, skipping brackets inside string literals.
fn closing_paren(text: &str) -> Option<usize> {
    let (mut depth, mut quote) = (1usize, None::<char>);
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i + c.len_utf8());
                    }
                }
                _ => {}
            },
        }
    }
    None
}

fn value_after_separator(rest: &str) -> Option<String> {
    let value = SEPARATORS
        .iter()
        .find_map(|sep| rest.strip_prefix(sep))?
        .trim();
    // "should return True." ends a sentence.
    let value = value.strip_suffix('.').unwrap_or(value).trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// One Python program that defines the prompt and `body`, runs every
/// example whose value and arguments evaluate, and prints the last line
/// `PASSED TOTAL`. A body that does not compile prints nothing; one that
/// raises on an example fails that example only. Values compare as doctest
/// reads them, floats to a relative 1e-6.
pub fn examples_program(problem: &Problem, body: &str, examples: &[Example]) -> String {
    let entry = &problem.entry_point;
    let cases: Vec<String> = examples
        .iter()
        .map(|e| {
            // The call with a function that accepts anything: do its
            // arguments evaluate, before the body is asked?
            let probe = format!("_samnet_probe{}", &e.call[entry.len()..]);
            format!(
                "    ({}, {}, {}),\n",
                python_str(&e.call),
                python_str(&e.expected),
                python_str(&probe)
            )
        })
        .collect();
    let harness = HARNESS.replace("{cases}", &cases.concat());
    format!("{}{body}\n\n{harness}", problem.prompt)
}

/// Runs after the prompt and the body; `{cases}` is a list of
/// `(call, expected, probe)` strings.
const HARNESS: &str = r#"def _samnet_probe(*args, **kwargs):
    return None

def _samnet_same(got, want):
    import math
    if isinstance(got, float) or isinstance(want, float):
        try:
            return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
        except TypeError:
            return False
    return got == want

_samnet_passed = _samnet_total = 0
for _samnet_call, _samnet_want, _samnet_args in [
{cases}]:
    try:
        _samnet_want = eval(_samnet_want)
        eval(_samnet_args)
    except Exception:
        continue
    _samnet_total += 1
    try:
        _samnet_passed += bool(_samnet_same(eval(_samnet_call), _samnet_want))
    except Exception:
        pass
print()
print(_samnet_passed, _samnet_total)
"#;

/// `(passed, total)` from the output of [`examples_program`]: its last line.
pub fn tally(stdout: &str) -> Option<(usize, usize)> {
    let mut numbers = stdout.lines().last()?.split_whitespace();
    let passed = numbers.next()?.parse().ok()?;
    let total = numbers.next()?.parse().ok()?;
    (numbers.next().is_none() && passed <= total).then_some((passed, total))
}

/// A Python string literal of `text` (a JSON string is one).
fn python_str(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(entry: &str, docstring: &str) -> Problem {
        Problem {
            task_id: "HumanEval/0".into(),
            prompt: format!("def {entry}(x):\n    \"\"\"\n{docstring}\n    \"\"\"\n"),
            canonical_solution: String::new(),
            test: String::new(),
            entry_point: entry.into(),
        }
    }

    fn pairs(p: &Problem) -> Vec<(String, String)> {
        examples(p)
            .into_iter()
            .map(|e| (e.call, e.expected))
            .collect()
    }

    #[test]
    fn every_stated_form_is_an_example() {
        let p = problem(
            "f",
            "    >>> f([1, 2])\n    [2, 4]\n    >>> f('a)') == 'b'\n    f(3) ==> 6 \n    \
             f(\"x\") ➞ [\"x\"]\n    f(4) => \"YES\"\n    for f(5) == 10\n    \
             f({\"a\": 1}) should return True.\n    f(6) = -1\n    f(7) -> 14",
        );
        let want = [
            ("f([1, 2])", "[2, 4]"),
            ("f('a)')", "'b'"),
            ("f(3)", "6"),
            ("f(\"x\")", "[\"x\"]"),
            ("f(4)", "\"YES\""),
            ("f(5)", "10"),
            ("f({\"a\": 1})", "True"),
            ("f(6)", "-1"),
            ("f(7)", "14"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(c, e)| (c.to_string(), e.to_string()))
            .collect();
        assert_eq!(pairs(&p), want);
    }

    #[test]
    fn prose_and_other_functions_are_not_examples() {
        let p = problem(
            "f",
            "    Write f() that returns twice x.\n    >>> g(1)\n    2\n    \
             >>> f(1)\n    >>> self.f(2) == 4\n    elf(2) == 4\n    f(3",
        );
        assert_eq!(pairs(&p), Vec::new());
    }

    #[test]
    fn the_tally_is_the_last_line() {
        assert_eq!(tally("noise\n\n2 3\n"), Some((2, 3)));
        assert_eq!(tally("2 3\n4\n"), None);
        assert_eq!(tally("3 2\n"), None);
        assert_eq!(tally(""), None);
    }

    /// On HumanEval's held-out problems the canonical bodies pass what is
    /// read as their examples (but for prose read as one), and a body that
    /// returns nothing passes few.
    #[test]
    fn canonical_bodies_pass_the_held_out_examples() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let run = |program: String| -> Option<(usize, usize)> {
            let mut child = Command::new("python3")
                .arg("-")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            child.stdin.take()?.write_all(program.as_bytes()).ok()?;
            let out = child.wait_with_output().ok()?;
            tally(&String::from_utf8_lossy(&out.stdout))
        };
        if run(String::from("print(0, 0)")).is_none() {
            println!("python3 not found: the examples are not run");
            return;
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/humaneval.jsonl.gz");
        let bytes = crate::corpus::read_data_file(&path).unwrap();
        let text = crate::data::text_from_bytes(bytes, "humaneval").unwrap();
        let problems = crate::humaneval::parse(&text, "humaneval").unwrap();
        let mut with_examples = 0;
        for p in problems.iter().filter(|p| p.is_held_out()) {
            let found = examples(p);
            let (passed, total) = run(examples_program(p, &p.canonical_solution, &found)).unwrap();
            // HumanEval/130 states its recurrence as `tri(1) = 3`.
            if p.task_id != "HumanEval/130" {
                assert_eq!(passed, total, "{} {found:?}", p.task_id);
            }
            with_examples += usize::from(total > 0);
            let (none, _) = run(examples_program(p, "    return None\n", &found)).unwrap();
            assert!(total == 0 || none < passed, "{}", p.task_id);
            assert_eq!(run(examples_program(p, "    return (\n", &found)), None);
        }
        assert!(with_examples >= 25, "{with_examples} of 33 with examples");
    }
}
