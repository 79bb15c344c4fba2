//! Faults during `samnet train`, on the real binary: SIGKILL at random
//! moments (every resume must succeed and end bit-identical to an
//! uninterrupted run), and injected NaNs (skipped, logged, survived).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

fn shakespeare() -> String {
    format!(
        "{}/../../shared/data/tinyshakespeare.txt",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("samnet-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const STEPS: usize = 48;

/// `samnet train` on the tiny preset, logging every step and checkpointing
/// every other one, into `out`.
fn train(out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_samnet"));
    cmd.args(["train", "--preset", "tiny", "--data", &shakespeare()])
        .args(["--steps", &STEPS.to_string(), "--batch", "4"])
        .args([
            "--log-every",
            "1",
            "--checkpoint-every",
            "2",
            "--no-progress",
        ])
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// The uninterrupted run every faulty one is compared with, and how long it took.
fn reference() -> &'static (PathBuf, Duration) {
    static RUN: OnceLock<(PathBuf, Duration)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("reference");
        let started = Instant::now();
        run_to_end(&mut train(&dir, &[]));
        (dir, started.elapsed())
    })
}

/// Asserts that the run in `out` logged the reference's curve and ended
/// with the reference's checkpoint files, byte for byte.
fn same_as_reference(out: &Path, what: &str) {
    let expected = curve(&reference().0);
    assert_eq!(expected.len(), STEPS, "the reference logs every step");
    let got = curve(out);
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: the log has {} records, the uninterrupted {}",
        got.len(),
        expected.len()
    );
    for (a, b) in got.iter().zip(&expected) {
        assert_eq!(a, b, "{what}: the loss curves differ");
    }
    let (files, reference_files) = (checkpoint_bytes(out), checkpoint_bytes(&reference().0));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&files), names(&reference_files));
    for ((name, x), (_, y)) in files.iter().zip(&reference_files) {
        assert!(x == y, "{what}: the final {name} differs");
    }
}

fn run_to_end(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs samnet");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "samnet train failed:\n{stderr}");
    stderr
}

/// The metrics.jsonl records, without the fields that depend on timing.
fn curve(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            for timing in ["elapsed_s", "tokens_per_s", "gpu_memory_bytes"] {
                m.remove(timing);
            }
            v
        })
        .collect()
}

fn checkpoint_bytes(out: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = out.join("checkpoint");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// xorshift64*: the kill moments, reproducible from the printed seed.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % max
    }
}

#[test]
fn sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run() {
    let kills: usize = std::env::var("SAMNET_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let seed = std::env::var("SAMNET_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("kill moments from SAMNET_KILL_SEED={seed}");
    let mut moments = Moments(seed);

    let started = Instant::now();
    let uninterrupted = reference().1;

    // Episodes: a run into a fresh directory, killed at random moments and
    // resumed until it completes, then compared with the reference; as
    // many episodes as it takes to land `kills` kills.
    let has_checkpoint =
        |out: &Path| out.join("checkpoint").is_dir() || out.join(".checkpoint.old").is_dir();
    let (mut killed, mut resumes, mut mid_write, mut episodes) = (0, 0, 0, 0);
    while killed < kills {
        episodes += 1;
        let out = scratch(&format!("killed-{episodes}"));
        let mut finished = false;
        while killed < kills && !finished {
            let resume = has_checkpoint(&out);
            resumes += resume as usize;
            let mut child = train(&out, if resume { &["--resume"] } else { &[] })
                .spawn()
                .unwrap();
            let wait = moments.next_ms(uninterrupted.as_millis() as u64 / 2);
            std::thread::sleep(Duration::from_millis(wait));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                killed += 1;
            }
            let status = child.wait().unwrap();
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            // Every run was either killed or succeeded (completing the run).
            if status.success() {
                finished = true;
            } else {
                assert!(
                    status.code().is_none(),
                    "a run after {killed} kills failed by itself ({status}):\n{stderr}"
                );
            }
            if out.join(".checkpoint.tmp").exists() || out.join(".checkpoint.old").exists() {
                mid_write += 1;
            }
        }
        if !finished {
            // The last kill may have landed before the first checkpoint.
            let resume = has_checkpoint(&out);
            resumes += resume as usize;
            run_to_end(&mut train(&out, if resume { &["--resume"] } else { &[] }));
        }
        same_as_reference(&out, &format!("episode {episodes}"));
        let _ = std::fs::remove_dir_all(&out);
    }
    println!(
        "KILL {killed} SIGKILLs at random moments ({mid_write} left a checkpoint write unfinished), {resumes} resumes, \
         all succeeded; in each of {episodes} episode(s) the {STEPS}-step loss curve and the final checkpoint files \
         are bit-identical to the uninterrupted run's ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn injected_nans_are_skipped_logged_and_survived() {
    let out = scratch("nan");
    let stderr = run_to_end(&mut train(&out, &["--inject-nan", "5,6,17"]));
    let records = curve(&out);
    assert_eq!(records.len(), STEPS);
    for r in &records {
        let step = r["step"].as_u64().unwrap() as usize;
        let poisoned = [5, 6, 17].contains(&step);
        assert_eq!(r["skipped"], Value::Bool(poisoned), "step {step}: {r}");
        assert!(
            r["loss"].is_null() == poisoned,
            "step {step}: a loss of {} (NaN is logged as null)",
            r["loss"]
        );
        let before = [5, 6, 17].iter().filter(|&&s| s <= step).count();
        assert_eq!(r["skipped_steps"].as_u64().unwrap() as usize, before);
    }
    for step in [5, 6, 17] {
        assert!(
            stderr.contains(&format!("step {step}: skipped 1 step(s)")),
            "no skip line for step {step}:\n{stderr}"
        );
    }
    let last = &records[STEPS - 1];
    assert!(last["loss"].as_f64().unwrap() < records[0]["loss"].as_f64().unwrap());
    println!(
        "NAN 3 injected NaNs skipped and logged; the run finished with loss {}",
        last["loss"]
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_lost_device_stops_the_run_clearly_and_its_checkpoint_resumes() {
    let out = scratch("lost");
    let failed = train(&out, &["--inject-device-loss", "13"])
        .output()
        .unwrap();
    assert!(!failed.status.success(), "the run survived a lost device");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in [
        "error: training stopped at step 13",
        "(step 12) is intact; continue with --resume",
        "the GPU device was lost",
        "smaller batch",
    ] {
        assert!(last.contains(needle), "lacks {needle:?}: {last}");
    }
    assert!(
        !out.join(".checkpoint.tmp").exists(),
        "a partial checkpoint was left"
    );
    run_to_end(&mut train(&out, &["--resume"]));
    same_as_reference(&out, "after a lost device");
    println!(
        "LOST device lost at step 13: clear error, checkpoint of step 12 intact, resumed bit-identically"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn twenty_skipped_steps_in_a_row_stop_the_run_as_diverged() {
    let out = scratch("diverged");
    let poisoned: Vec<String> = (3..=22).map(|s| s.to_string()).collect();
    let failed = train(&out, &["--inject-nan", &poisoned.join(",")])
        .output()
        .unwrap();
    assert!(!failed.status.success(), "a run of NaNs did not stop");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    for needle in [
        "error: training stopped at step 22",
        "(step 20) is intact",
        "diverged: at least 20 consecutive steps",
        "lower --lr",
    ] {
        assert!(last.contains(needle), "lacks {needle:?}: {last}");
    }
    // The checkpoint of step 20 counts the 18 skipped steps before it.
    let state = std::fs::read_to_string(out.join("checkpoint").join("state.json")).unwrap();
    assert!(state.contains("\"skipped_steps\": 18"), "{state}");
    let _ = std::fs::remove_dir_all(&out);
}
