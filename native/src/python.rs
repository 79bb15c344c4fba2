//! Running generated Python: each program in its own process with a time
//! limit, as many at once as the machine has cores. This executes model
//! output; as with HumanEval's own harness, do it in a sandbox.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How one program ended, and what it printed.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// "passed" (exit status 0), "failed" or "timeout".
    pub outcome: &'static str,
    pub stdout: String,
}

impl Run {
    pub fn passed(&self) -> bool {
        self.outcome == "passed"
    }
}

pub struct Python {
    program: String,
    timeout: Duration,
}

impl Python {
    /// The interpreter `program`, checked to run.
    pub fn new(program: &str, timeout_s: u64) -> anyhow::Result<Self> {
        let ok = Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            anyhow::bail!("--run-tests needs Python: cannot run '{program}' (pass --python PATH)");
        }
        Ok(Self {
            program: program.to_string(),
            timeout: Duration::from_secs(timeout_s),
        })
    }

    /// Every program's run, the results in their order. A program repeated
    /// runs once: sampled candidates repeat (a third of a 64-candidate
    /// single-line run's), and the programs are deterministic.
    pub fn run_all(&self, programs: &[String]) -> anyhow::Result<Vec<Run>> {
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        let mut distinct: Vec<&str> = Vec::new();
        let slots: Vec<usize> = programs
            .iter()
            .map(|p| {
                *first_of.entry(p).or_insert_with(|| {
                    distinct.push(p);
                    distinct.len() - 1
                })
            })
            .collect();
        let runs = self.run_distinct(&distinct)?;
        Ok(slots.into_iter().map(|k| runs[k].clone()).collect())
    }

    fn run_distinct(&self, programs: &[&str]) -> anyhow::Result<Vec<Run>> {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(programs.len())
            .max(1);
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<anyhow::Result<Run>>>> =
            Mutex::new((0..programs.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(program) = programs.get(i) else {
                            break;
                        };
                        let run = self.run(program);
                        results.lock().expect("a runner panicked")[i] = Some(run);
                    }
                });
            }
        });
        results
            .into_inner()
            .expect("a runner panicked")
            .into_iter()
            .map(|r| r.expect("every program was taken"))
            .collect()
    }

    /// One program, from a file of its own.
    pub fn run(&self, program: &str) -> anyhow::Result<Run> {
        static FILES: AtomicUsize = AtomicUsize::new(0);
        let n = FILES.fetch_add(1, Ordering::Relaxed);
        let stem = format!("samnet-python-{}-{n}", std::process::id());
        let file = scratch(&format!("{stem}.py"));
        let output = scratch(&format!("{stem}.out"));
        std::fs::write(&file, program).with_context(|| format!("writing {}", file.display()))?;
        let outcome = self.wait_for(&file, &output);
        let stdout = std::fs::read(&output).unwrap_or_default();
        std::fs::remove_file(&file).ok();
        std::fs::remove_file(&output).ok();
        Ok(Run {
            outcome: outcome?,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
        })
    }

    fn wait_for(&self, file: &Path, output: &Path) -> anyhow::Result<&'static str> {
        let stdout = std::fs::File::create(output)
            .with_context(|| format!("creating {}", output.display()))?;
        let mut child = Command::new(&self.program)
            .arg(file)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("running {}", self.program))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(if status.success() { "passed" } else { "failed" });
            }
            if Instant::now() >= deadline {
                child.kill().ok();
                child.wait().ok();
                return Ok("timeout");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(name)
}

/// A program that only compiles `source`: a completion that does not is
/// wrong before any test runs.
pub fn compile_check(source: &str) -> String {
    // A JSON string is a Python string literal.
    format!(
        "compile({}, 'completion', 'exec')\n",
        serde_json::Value::from(source)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_output_and_order_survive_running_at_once() {
        let Ok(python) = Python::new("python3", 2) else {
            println!("python3 not found: the runner is not exercised");
            return;
        };
        let mut programs: Vec<String> = (0..9).map(|i| format!("print({i} * 2)\n")).collect();
        programs.push("raise SystemExit(3)\n".into());
        programs.push("while True:\n    pass\n".into());
        programs.push(compile_check("def f(x):\n    return x  # é \"\\n\n"));
        programs.push(compile_check("def f(x):\n    return x)\n"));
        let runs = python.run_all(&programs).unwrap();
        for (i, run) in runs[..9].iter().enumerate() {
            assert_eq!(run.stdout.trim(), (i * 2).to_string());
            assert!(run.passed());
        }
        let outcomes: Vec<&str> = runs[9..].iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, ["failed", "timeout", "passed", "failed"]);
        assert!(Python::new("/nonexistent/python", 1).is_err());
    }

    #[test]
    fn a_repeated_program_runs_once_and_answers_every_place_it_stands() {
        let Ok(python) = Python::new("python3", 5) else {
            println!("python3 not found: the runner is not exercised");
            return;
        };
        let log = scratch(&format!("samnet-python-runs-{}.log", std::process::id()));
        std::fs::remove_file(&log).ok();
        let logged = |i: usize| {
            format!(
                "open({}, 'a').write('{i}\\n')\nprint({i})\n",
                serde_json::Value::from(log.display().to_string())
            )
        };
        let order = [0, 1, 0, 2, 1, 0];
        let programs: Vec<String> = order.iter().map(|&i| logged(i)).collect();
        let runs = python.run_all(&programs).unwrap();
        let printed: Vec<&str> = runs.iter().map(|r| r.stdout.trim()).collect();
        assert_eq!(printed, ["0", "1", "0", "2", "1", "0"]);
        let mut ran: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        ran.sort();
        assert_eq!(ran, ["0", "1", "2"]);
        std::fs::remove_file(&log).ok();
    }
}
