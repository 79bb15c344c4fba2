//! HumanEval (OpenAI; 164 Python problems, each a prompt — imports, the
//! signature and a docstring — a canonical body and a test): the code
//! completion demo trains on some problems and is scored on the others.
//! Every fifth problem (task number divisible by 5: 33 of 164) is held out:
//! never in a training corpus, only completed and scored.

mod examples;

use serde::Deserialize;

pub use examples::{Example, examples, examples_program, tally};

use crate::{Error, Result};

#[derive(Clone, Debug, Deserialize)]
pub struct Problem {
    pub task_id: String,
    pub prompt: String,
    pub canonical_solution: String,
    pub test: String,
    pub entry_point: String,
}

const SHAPE: &str = r#"expected a HumanEval record {"task_id", "prompt", "canonical_solution", "test", "entry_point"}"#;

impl Problem {
    /// The N of "HumanEval/N".
    pub fn number(&self) -> Option<usize> {
        self.task_id.rsplit('/').next()?.parse().ok()
    }

    pub fn is_held_out(&self) -> bool {
        self.number().is_some_and(|n| n % 5 == 0)
    }

    /// The problem after each held-out one (task numbers 1, 6, …: 33 of
    /// 164), trained on: the held-out figure's count and spread on problems
    /// the model has read.
    pub fn is_trained_probe(&self) -> bool {
        self.number().is_some_and(|n| n % 5 == 1)
    }

    /// The prompt's line that defines the entry point (`def name(…):`): what
    /// a window too short for the whole prompt keeps, for the names in it.
    pub fn signature(&self) -> Option<&str> {
        let opening = format!("def {}(", self.entry_point);
        self.prompt
            .lines()
            .find(|line| line.trim_start().starts_with(&opening))
    }

    /// HumanEval's check of a completion as one Python program: the prompt,
    /// the completion, the problem's tests, and the call of `check`.
    pub fn test_program(&self, completion: &str) -> String {
        format!(
            "{}{}\n{}\ncheck({})\n",
            self.prompt, completion, self.test, self.entry_point
        )
    }
}

/// Whether a JSON Lines record is a HumanEval problem (by its keys).
pub fn is_problem(record: &serde_json::Value) -> bool {
    record.get("task_id").is_some() && record.get("canonical_solution").is_some()
}

/// HumanEval's JSON Lines; errors name the line.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let problem: Problem = serde_json::from_str(line)
            .map_err(|e| Error::file(origin, format!("line {}: {e}; {SHAPE}", i + 1)))?;
        if problem.number().is_none() {
            return Err(Error::file(
                origin,
                format!(
                    "line {}: task_id {:?} does not end in a problem number",
                    i + 1,
                    problem.task_id
                ),
            ));
        }
        problems.push(problem);
    }
    if problems.is_empty() {
        return Err(Error::file(origin, "holds no problems"));
    }
    Ok(problems)
}

/// A generated body up to where the function ends: the first non-blank
/// line that is not indented (another definition, top-level code).
pub fn function_body(completion: &str) -> &str {
    let mut end = 0;
    for line in completion.split_inclusive('\n') {
        let top_level = !line.trim().is_empty() && !line.starts_with([' ', '\t']);
        if top_level {
            break;
        }
        end += line.len();
    }
    &completion[..end]
}

/// One case of the single-line infilling benchmark: line `line` of a
/// canonical body hidden, the code before and after it known.
#[derive(Clone, Debug, PartialEq)]
pub struct LineHole {
    /// Index of the hidden line in the canonical body.
    pub line: usize,
    /// The prompt and the body's lines before the hole, ending in a newline.
    pub before: String,
    /// The hidden line, without its newline.
    pub hidden: String,
    /// Its newline and the body's lines after it.
    pub after: String,
}

impl LineHole {
    /// The body with `line` in the hole ([`filled_line`]: one line).
    pub fn body_with(&self, problem: &Problem, line: &str) -> String {
        let line = filled_line(line);
        let body_before = &self.before[problem.prompt.len()..];
        format!("{body_before}{line}{}", self.after)
    }

    /// The trivial filling: `pass` at the hidden line's indentation.
    pub fn blank(&self) -> String {
        let indent: String = self
            .hidden
            .chars()
            .take_while(|c| c.is_whitespace())
            .collect();
        format!("{indent}pass")
    }
}

/// The line a single-line fill puts in the hole: its first line that is not
/// blank. A byte-level BPE writes a blank line and the next line's
/// indentation as one token ("\n\n    "), so a fill can open with a blank
/// line, which Python ignores: the statement after it is the fill.
pub fn filled_line(fill: &str) -> &str {
    fill.split('\n')
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Every non-blank line of the problem's canonical body as a hole.
pub fn line_holes(problem: &Problem) -> Vec<LineHole> {
    let lines: Vec<&str> = problem.canonical_solution.split_inclusive('\n').collect();
    (0..lines.len())
        .filter(|&i| !lines[i].trim().is_empty())
        .map(|i| {
            let hidden = lines[i].strip_suffix('\n').unwrap_or(lines[i]);
            LineHole {
                line: i,
                before: format!("{}{}", problem.prompt, lines[..i].concat()),
                hidden: hidden.to_string(),
                after: format!("{}{}", &lines[i][hidden.len()..], lines[i + 1..].concat()),
            }
        })
        .collect()
}

/// The same code up to trailing whitespace on each line and blank lines at the end.
pub fn same_code(a: &str, b: &str) -> bool {
    let lines = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s.lines().map(|l| l.trim_end().to_string()).collect();
        while v.last().is_some_and(|l| l.is_empty()) {
            v.pop();
        }
        v
    };
    lines(a) == lines(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(n: usize) -> Problem {
        Problem {
            task_id: format!("HumanEval/{n}"),
            prompt: "def inc(x):\n    \"\"\"x + 1\"\"\"\n".into(),
            canonical_solution: "    return x + 1\n".into(),
            test: "def check(f):\n    assert f(1) == 2\n".into(),
            entry_point: "inc".into(),
        }
    }

    #[test]
    fn the_signature_is_the_entry_points_def_line() {
        let mut p = problem(0);
        p.prompt = format!(
            "from typing import List\n\n\ndef inc_all(xs):\n    pass\n\n\n{}",
            p.prompt
        );
        assert_eq!(p.signature(), Some("def inc(x):"));
        p.entry_point = "dec".into();
        assert_eq!(p.signature(), None);
    }

    #[test]
    fn every_fifth_problem_is_held_out() {
        assert!(problem(0).is_held_out() && problem(35).is_held_out());
        assert!(!problem(1).is_held_out() && !problem(164).is_held_out());
        assert!(problem(1).is_trained_probe() && problem(161).is_trained_probe());
        assert!(!problem(0).is_trained_probe() && !problem(2).is_trained_probe());
        assert_eq!(problem(17).number(), Some(17));
    }

    #[test]
    fn a_body_ends_where_top_level_code_starts() {
        let text = "    y = x\n\n    return y\ndef other():\n    pass\n";
        assert_eq!(function_body(text), "    y = x\n\n    return y\n");
        assert_eq!(function_body("    return 1"), "    return 1");
        assert_eq!(function_body("print(1)\n"), "");
    }

    #[test]
    fn same_code_ignores_trailing_whitespace_only() {
        assert!(same_code("    return x + 1  \n\n\n", "    return x + 1\n"));
        assert!(!same_code("    return x+1\n", "    return x + 1\n"));
        assert!(!same_code("  return x + 1\n", "    return x + 1\n"));
    }

    #[test]
    fn the_test_program_calls_check_on_the_entry_point() {
        let program = problem(3).test_program("    return x + 1\n");
        assert!(program.starts_with("def inc(x):"));
        assert!(program.ends_with("check(inc)\n"));
        assert!(program.contains("    return x + 1\n\ndef check(f):"));
    }

    #[test]
    fn every_non_blank_line_is_a_hole_with_its_context() {
        let mut p = problem(5);
        p.canonical_solution = "    y = x\n\n    return y + 1\n".into();
        let holes = line_holes(&p);
        assert_eq!(holes.iter().map(|h| h.line).collect::<Vec<_>>(), [0, 2]);
        let solved = format!("{}{}", p.prompt, p.canonical_solution);
        for h in &holes {
            assert_eq!(format!("{}{}{}", h.before, h.hidden, h.after), solved);
            assert_eq!(h.body_with(&p, &h.hidden), p.canonical_solution);
        }
        assert_eq!(holes[1].hidden, "    return y + 1");
        assert_eq!(holes[1].blank(), "    pass");
        assert_eq!(
            holes[1].body_with(&p, "    return y\n    junk"),
            "    y = x\n\n    return y\n",
            "one line only"
        );
        assert_eq!(
            holes[1].body_with(&p, "\n    return y"),
            "    y = x\n\n    return y\n",
            "a blank line before it is dropped"
        );
        assert_eq!(filled_line("  \n\n"), "");
    }

    #[test]
    fn malformed_records_are_named_by_line() {
        let good = serde_json::to_string(&serde_json::json!({
            "task_id": "HumanEval/1", "prompt": "p", "canonical_solution": "s",
            "test": "t", "entry_point": "e"
        }))
        .unwrap();
        assert_eq!(parse(&good, "h.jsonl").unwrap().len(), 1);
        let missing = format!("{good}\n{{\"task_id\": \"HumanEval/2\"}}");
        let err = parse(&missing, "h.jsonl").unwrap_err().to_string();
        assert!(err.contains("h.jsonl") && err.contains("line 2") && err.contains("missing field"));
        let unnumbered = good.replace("HumanEval/1", "HumanEval/x");
        let err = parse(&unnumbered, "h.jsonl").unwrap_err().to_string();
        assert!(err.contains("problem number"), "{err}");
        assert!(parse("\n", "h.jsonl").is_err());
    }
}
