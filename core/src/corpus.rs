//! Training documents from the files a run is given: plain text and code
//! (Project Gutenberg books lose their header and licence), Alpaca
//! instruction records (`[{instruction, input, output}]` JSON), Alpaca seed
//! tasks (JSONL, one `{instruction, instances: [{input, output}]}` a line),
//! HumanEval problems (JSONL; the held-out fifth left out, see
//! [`crate::humaneval`]) and code examples (JSONL, one `{prompt,
//! completion}` a line, as `scripts/python-functions-as-examples` writes
//! them); any of them gzipped (`.gz`). An instruction becomes a prompt (the
//! template below), known while training and outside the loss, and a
//! response, which trains. A HumanEval problem and a code example are the
//! same without the template: the prompt (signature and docstring) is known,
//! the body trains, just as `samnet eval-code` asks for it.
//!
//! The prompt template (Alpaca's, without its preamble; the `### Input:`
//! section only when the input is not empty):
//!
//! ```text
//! ### Instruction:
//! {instruction}
//!
//! ### Input:
//! {input}
//!
//! ### Response:
//! {output}
//! ```

use serde::Deserialize;

use crate::data::text_from_bytes;
use crate::humaneval;
use crate::tokenizer::SEPARATOR;
use crate::{Error, Result};

/// One document of a corpus; `source` names it in errors (file, record).
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub source: String,
    pub body: Body,
    /// An example that `--split trained` scores (a trained-probe seed task
    /// or HumanEval problem): never drawn into the validation split, so the
    /// figure is on what training read.
    pub always_trains: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// Every position trains.
    Text(String),
    /// The prompt is known and outside the loss; the response trains.
    Example { prompt: String, response: String },
}

/// The prompt of an instruction record (see the module documentation).
pub fn prompt(instruction: &str, input: &str) -> String {
    if input.is_empty() {
        format!("### Instruction:\n{instruction}\n\n### Response:\n")
    } else {
        format!("### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
    }
}

/// A denoised response up to where the model ends the example: the
/// separator that follows every packed document, or the start of another
/// template section (`###`).
pub fn response_of(generated: &str) -> &str {
    let end = [SEPARATOR, "###"]
        .iter()
        .filter_map(|marker| generated.find(marker))
        .min()
        .unwrap_or(generated.len());
    generated[..end].trim()
}

/// A book without Project Gutenberg's header and licence: the text after the
/// `*** START OF ... PROJECT GUTENBERG ... ***` marker (which may wrap onto
/// the next two lines) or, in older editions, after the `*END*THE SMALL
/// PRINT!` line, up to `*** END OF ... PROJECT GUTENBERG` or a closing
/// `End of (the) Project Gutenberg ...` line; `None` where the book has
/// neither start. `scripts/books-from-gitenberg` cuts the same way.
pub fn strip_gutenberg(text: &str) -> Option<&str> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let upper = |line: &str| line.trim().to_ascii_uppercase();
    let is_marker = |line: &str, word: &str| {
        let line = upper(line);
        line.starts_with("***")
            && line.trim_start_matches('*').trim_start().starts_with(word)
            && line.contains("PROJECT GUTENBERG")
    };
    let after_marker = lines
        .iter()
        .position(|l| is_marker(l, "START OF"))
        .map(|i| {
            // A wrapped marker ends on the first line that closes it.
            let last = (i..lines.len().min(i + 3))
                .find(|&j| lines[j].trim_end().ends_with("***"))
                .unwrap_or((i + 2).min(lines.len() - 1));
            last + 1
        });
    let after_small_print = || {
        lines.iter().position(|l| {
            let l = upper(l);
            l.strip_prefix("*END")
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
                && l.contains("SMALL PRINT")
        })
    };
    let start = after_marker.or_else(|| after_small_print().map(|i| i + 1))?;
    let is_end = |line: &str| {
        let closing = upper(line);
        is_marker(line, "END OF")
            || ["END OF PROJECT GUTENBERG", "END OF THE PROJECT GUTENBERG"]
                .iter()
                .any(|p| closing.starts_with(p))
    };
    let end = (start..lines.len())
        .find(|&i| is_end(lines[i]))
        .unwrap_or(lines.len());
    let offset = |i: usize| lines[..i].iter().map(|l| l.len()).sum::<usize>();
    Some(text[offset(start)..offset(end)].trim_matches(['\r', '\n', ' ']))
}

/// A text file's document: its Gutenberg body where it has the markers
/// (second value true), else the whole text.
pub fn text_document(text: String, source: &str) -> (Document, bool) {
    let text = match text.strip_prefix('\u{FEFF}') {
        Some(rest) => rest.to_string(),
        None => text,
    };
    let (text, stripped) = match strip_gutenberg(&text) {
        Some(body) => (body.to_string(), true),
        None => (text, false),
    };
    let doc = Document {
        source: source.to_string(),
        body: Body::Text(text),
        always_trains: false,
    };
    (doc, stripped)
}

#[derive(Deserialize)]
struct AlpacaRecord {
    instruction: String,
    #[serde(default)]
    input: String,
    output: String,
}

/// A code example: the prompt is known, the completion trains (no template).
#[derive(Deserialize)]
struct CodeExample {
    prompt: String,
    completion: String,
}

#[derive(Deserialize)]
struct SeedTask {
    instruction: String,
    instances: Vec<SeedInstance>,
}

#[derive(Deserialize)]
struct SeedInstance {
    #[serde(default)]
    input: String,
    output: String,
}

fn example(source: String, instruction: &str, input: &str, output: &str) -> Document {
    Document {
        source,
        body: Body::Example {
            prompt: prompt(instruction, input),
            response: output.to_string(),
        },
        always_trains: false,
    }
}

const ALPACA_SHAPE: &str = r#"expected {"instruction": string, "input": string, "output": string}"#;
const CODE_SHAPE: &str = r#"expected {"prompt": string, "completion": string}"#;
const SEED_SHAPE: &str =
    r#"expected {"instruction": string, "instances": [{"input": string, "output": string}, ...]}"#;

/// Alpaca's `[{instruction, input, output}, ...]`; errors name the record (from 1).
pub fn parse_alpaca(json: &str, origin: &str) -> Result<Vec<Document>> {
    let records: Vec<serde_json::Value> = serde_json::from_str(json).map_err(|e| {
        Error::file(
            origin,
            format!("not an Alpaca JSON file (a list of instruction records): {e}"),
        )
    })?;
    if records.is_empty() {
        return Err(Error::file(origin, "holds no records"));
    }
    records
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let r: AlpacaRecord = serde_json::from_value(value).map_err(|e| {
                Error::file(origin, format!("record {}: {e}; {ALPACA_SHAPE}", i + 1))
            })?;
            Ok(example(
                format!("{origin} record {}", i + 1),
                &r.instruction,
                &r.input,
                &r.output,
            ))
        })
        .collect()
}

/// A seed task's first instance as phase 4's evaluation prompts and scores
/// it: a held-out task, or a trained one for the same figure on what
/// training read.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalTask {
    pub source: String,
    pub instruction: String,
    pub input: String,
    pub output: String,
}

/// Every ninth seed task (the 1st, 10th, …: 20 of Alpaca's 175) is held out.
pub fn is_held_out_seed_task(ordinal: usize) -> bool {
    ordinal.is_multiple_of(9)
}

/// The seed task after each held-out one (the 2nd, 11th, …), trained on:
/// as many tasks as are held out, spread over the file the same way.
fn is_trained_probe_seed_task(ordinal: usize) -> bool {
    ordinal % 9 == 1
}

/// JSON Lines: one Alpaca seed task (with `instances`, one example each),
/// one Alpaca record or one code example (`prompt`, `completion`) a line;
/// blank lines are allowed. Errors name the line.
/// Held-out seed tasks ([`is_held_out_seed_task`]) give no examples.
pub fn parse_jsonl(text: &str, origin: &str) -> Result<Vec<Document>> {
    read_jsonl(text, origin).map(|seed| seed.docs)
}

/// The held-out seed tasks of a JSON Lines file (see [`parse_jsonl`]).
pub fn held_out_tasks(text: &str, origin: &str) -> Result<Vec<EvalTask>> {
    seed_tasks_of(read_jsonl(text, origin)?.held_out, origin)
}

/// As many trained seed tasks as are held out
/// ([`is_trained_probe_seed_task`]): phase 4's figure on answers the model
/// was trained on, which tells a model that cannot fit them from one that
/// fits them and does not generalise.
pub fn trained_tasks(text: &str, origin: &str) -> Result<Vec<EvalTask>> {
    seed_tasks_of(read_jsonl(text, origin)?.trained, origin)
}

fn seed_tasks_of(tasks: Vec<EvalTask>, origin: &str) -> Result<Vec<EvalTask>> {
    if tasks.is_empty() {
        return Err(Error::file(
            origin,
            "holds no seed tasks (records with 'instances')",
        ));
    }
    Ok(tasks)
}

/// A JSON Lines file read: its training examples, and the seed tasks that
/// evaluation prompts (held out, or trained on too).
struct SeedFile {
    docs: Vec<Document>,
    held_out: Vec<EvalTask>,
    trained: Vec<EvalTask>,
}

fn read_jsonl(text: &str, origin: &str) -> Result<SeedFile> {
    let (mut docs, mut held, mut trained, mut seed_tasks) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::file(origin, format!("line {n}: not JSON: {e}")))?;
        if value.get("instances").is_some() {
            let task: SeedTask = serde_json::from_value(value)
                .map_err(|e| Error::file(origin, format!("line {n}: {e}; {SEED_SHAPE}")))?;
            if task.instances.is_empty() {
                return Err(Error::file(
                    origin,
                    format!("line {n}: 'instances' is empty; {SEED_SHAPE}"),
                ));
            }
            seed_tasks += 1;
            // Built only for the two tasks in nine that evaluation prompts.
            let first_instance = || EvalTask {
                source: format!("{origin} line {n}"),
                instruction: task.instruction.clone(),
                input: task.instances[0].input.clone(),
                output: task.instances[0].output.clone(),
            };
            if is_held_out_seed_task(seed_tasks - 1) {
                held.push(first_instance());
                continue;
            }
            let probe = is_trained_probe_seed_task(seed_tasks - 1);
            if probe {
                trained.push(first_instance());
            }
            for (k, inst) in task.instances.iter().enumerate() {
                docs.push(Document {
                    always_trains: probe,
                    ..example(
                        format!("{origin} line {n} instance {}", k + 1),
                        &task.instruction,
                        &inst.input,
                        &inst.output,
                    )
                });
            }
        } else if value.get("completion").is_some() {
            let r: CodeExample = serde_json::from_value(value)
                .map_err(|e| Error::file(origin, format!("line {n}: {e}; {CODE_SHAPE}")))?;
            docs.push(Document {
                source: format!("{origin} line {n}"),
                body: Body::Example {
                    prompt: r.prompt,
                    response: r.completion,
                },
                always_trains: false,
            });
        } else {
            let r: AlpacaRecord = serde_json::from_value(value).map_err(|e| {
                Error::file(
                    origin,
                    format!("line {n}: {e}; {SEED_SHAPE}, {ALPACA_SHAPE} or {CODE_SHAPE}"),
                )
            })?;
            docs.push(example(
                format!("{origin} line {n}"),
                &r.instruction,
                &r.input,
                &r.output,
            ));
        }
    }
    if docs.is_empty() && held.is_empty() {
        return Err(Error::file(origin, "holds no records"));
    }
    Ok(SeedFile {
        docs,
        held_out: held,
        trained,
    })
}

/// What one file contributed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    Text {
        gutenberg_stripped: bool,
    },
    /// `held_out` seed tasks were kept out (phase 4's evaluation).
    Instructions {
        examples: usize,
        held_out: usize,
    },
    /// HumanEval: `training` problems became examples, `held_out` did not.
    Problems {
        training: usize,
        held_out: usize,
    },
}

/// The documents of one file (already decompressed when it is `.gz`), its
/// format chosen by extension: `.json` Alpaca, `.jsonl` HumanEval problems,
/// seed tasks or Alpaca records, anything else UTF-8 text.
pub fn parse_file(name: &str, bytes: Vec<u8>) -> Result<(Vec<Document>, FileKind)> {
    let text = text_from_bytes(bytes, name)?;
    let lower = name.to_ascii_lowercase();
    let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
    if lower.ends_with(".jsonl") && first_record(&text).is_some_and(|r| humaneval::is_problem(&r)) {
        let problems = humaneval::parse(&text, name)?;
        let docs: Vec<Document> = problems
            .iter()
            .filter(|p| !p.is_held_out())
            .map(|p| Document {
                source: format!("{name} {}", p.task_id),
                body: Body::Example {
                    prompt: p.prompt.clone(),
                    response: p.canonical_solution.clone(),
                },
                always_trains: p.is_trained_probe(),
            })
            .collect();
        let kind = FileKind::Problems {
            training: docs.len(),
            held_out: problems.len() - docs.len(),
        };
        Ok((docs, kind))
    } else if lower.ends_with(".json") {
        let docs = parse_alpaca(&text, name)?;
        let kind = FileKind::Instructions {
            examples: docs.len(),
            held_out: 0,
        };
        Ok((docs, kind))
    } else if lower.ends_with(".jsonl") {
        let seed = read_jsonl(&text, name)?;
        let kind = FileKind::Instructions {
            examples: seed.docs.len(),
            held_out: seed.held_out.len(),
        };
        Ok((seed.docs, kind))
    } else {
        let (doc, stripped) = text_document(text, name);
        if matches!(&doc.body, Body::Text(t) if t.is_empty()) {
            return Err(Error::file(
                name,
                "holds no text between its Project Gutenberg markers",
            ));
        }
        Ok((
            vec![doc],
            FileKind::Text {
                gutenberg_stripped: stripped,
            },
        ))
    }
}

/// The first non-blank line of JSON Lines, if it is JSON.
fn first_record(text: &str) -> Option<serde_json::Value> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    serde_json::from_str(line).ok()
}

#[cfg(not(target_arch = "wasm32"))]
pub use fs::*;

#[cfg(not(target_arch = "wasm32"))]
mod fs {
    use std::io::Read;
    use std::path::{Path, PathBuf};

    use super::{Document, FileKind, parse_file};
    use crate::{Error, Result};

    /// A data file's bytes, decompressed when its name ends in `.gz`.
    pub fn read_data_file(path: &Path) -> Result<Vec<u8>> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::file(path, format!("cannot read the data file: {e}")))?;
        if !path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
        {
            return Ok(bytes);
        }
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut plain)
            .map_err(|e| Error::file(path, format!("not a readable gzip file: {e}")))?;
        Ok(plain)
    }

    /// Extensions a folder's files are read by; others are listed as skipped.
    pub const FOLDER_EXTENSIONS: [&str; 5] = ["txt", "py", "json", "jsonl", "gz"];

    /// Every document of the given files and folders (folders recursively,
    /// in name order, their `.txt`, `.py`, `.json`, `.jsonl` and `.gz` files).
    #[derive(Debug, Default)]
    pub struct Corpus {
        pub documents: Vec<Document>,
        pub files: Vec<(PathBuf, FileKind)>,
        /// Files inside folders that were not read (other extensions, hidden).
        pub skipped: Vec<PathBuf>,
    }

    impl Corpus {
        pub fn read(paths: &[PathBuf]) -> Result<Corpus> {
            if paths.is_empty() {
                return Err(Error::Invalid("no data files given".into()));
            }
            let mut corpus = Corpus::default();
            for path in paths {
                if path.is_dir() {
                    let before = corpus.files.len();
                    corpus.read_dir(path)?;
                    if corpus.files.len() == before {
                        return Err(Error::file(
                            path,
                            "holds no .txt, .py, .json, .jsonl or .gz files to train on",
                        ));
                    }
                } else {
                    corpus.read_file(path)?;
                }
            }
            Ok(corpus)
        }

        fn read_file(&mut self, path: &Path) -> Result<()> {
            let bytes = read_data_file(path)?;
            let (docs, kind) = parse_file(&path.display().to_string(), bytes)?;
            self.documents.extend(docs);
            self.files.push((path.to_path_buf(), kind));
            Ok(())
        }

        fn read_dir(&mut self, dir: &Path) -> Result<()> {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
                .and_then(|it| it.map(|e| e.map(|e| e.path())).collect())
                .map_err(|e| Error::file(dir, format!("cannot list the folder: {e}")))?;
            entries.sort();
            for path in entries {
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                let known = path.extension().is_some_and(|e| {
                    FOLDER_EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str())
                });
                if hidden {
                    self.skipped.push(path);
                } else if path.is_dir() {
                    self.read_dir(&path)?;
                } else if known {
                    self.read_file(&path)?;
                } else {
                    self.skipped.push(path);
                }
            }
            Ok(())
        }

        /// One line: how many files of each kind, examples, skipped files.
        pub fn summary(&self) -> String {
            let (mut texts, mut stripped, mut examples, mut instruction_files) = (0, 0, 0, 0);
            let (mut problems, mut held_out, mut held_tasks) = (0, 0, 0);
            for (_, kind) in &self.files {
                match kind {
                    FileKind::Text { gutenberg_stripped } => {
                        texts += 1;
                        stripped += usize::from(*gutenberg_stripped);
                    }
                    FileKind::Instructions {
                        examples: n,
                        held_out: h,
                    } => {
                        instruction_files += 1;
                        examples += n;
                        held_tasks += h;
                    }
                    FileKind::Problems {
                        training,
                        held_out: h,
                    } => {
                        problems += training;
                        held_out += h;
                    }
                }
            }
            let mut s = format!(
                "{texts} text file(s) ({stripped} with a Project Gutenberg header and licence stripped), \
                 {examples} instruction example(s) from {instruction_files} file(s)"
            );
            if held_tasks > 0 {
                s += &format!(
                    " ({held_tasks} seed task(s) held out for evaluation, not trained on)"
                );
            }
            if problems + held_out > 0 {
                s += &format!(
                    ", {problems} HumanEval problem(s) ({held_out} held out for evaluation, not trained on)"
                );
            }
            if !self.skipped.is_empty() {
                let names: Vec<String> = self
                    .skipped
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                s += &format!("; skipped {}", names.join(", "));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn a_response_ends_at_the_separator_or_the_next_section() {
        assert_eq!(response_of(" Paris.\n<|endoftext|>Chapter I"), "Paris.");
        assert_eq!(response_of("Paris.\n\n### Instruction:\nx"), "Paris.");
        assert_eq!(response_of("a ### b <|endoftext|>"), "a");
        assert_eq!(response_of(" no end "), "no end");
    }

    #[test]
    fn gutenberg_header_and_licence_are_stripped() {
        let book = "\u{FEFF}The Project Gutenberg eBook of X\r\nlicence words\r\n\
                    *** START OF THE PROJECT GUTENBERG EBOOK 43 ***\r\n\r\nCHAPTER I\nIt began.\n\n\
                    *** END OF THE PROJECT GUTENBERG EBOOK 43 ***\nMore licence.\n";
        let (doc, stripped) = text_document(book.to_string(), "pg43.txt");
        assert!(stripped);
        assert_eq!(doc.body, Body::Text("CHAPTER I\nIt began.".into()));
        // Without markers the text is kept whole; a line merely mentioning
        // the markers' words is not a marker.
        let plain = "*** not a marker\nSTART OF THE PROJECT GUTENBERG\n";
        assert_eq!(strip_gutenberg(plain), None);
        // A start marker without an end keeps everything after it.
        assert_eq!(
            strip_gutenberg("head\n*** START OF THIS PROJECT GUTENBERG EBOOK FOO ***\nbody\n"),
            Some("body")
        );
        // A marker wrapped onto the next line; the closing line of older
        // editions ends the book before the end marker.
        let wrapped = "head\n*** START OF THIS PROJECT GUTENBERG EBOOK THE\nLONG TITLE ***\n\
                       Body.\nEnd of the Project Gutenberg EBook of X\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\n";
        assert_eq!(strip_gutenberg(wrapped), Some("Body."));
        // The oldest editions: the licence ends with the small print's
        // `*END*` line, the book with `End of Project Gutenberg's ...`.
        let old = "The Project Gutenberg Etext of X\nlicence\n\
                   *END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n\
                   Body.\n\nEnd of Project Gutenberg's X\n";
        assert_eq!(strip_gutenberg(old), Some("Body."));
        // `*ENDING` is not the small print's end.
        assert_eq!(strip_gutenberg("*ENDING SMALL PRINT\nbody\n"), None);
        let err = parse_file(
            "empty.txt",
            b"*** START OF THE PROJECT GUTENBERG EBOOK 1 ***\n*** END OF THE PROJECT GUTENBERG EBOOK 1 ***\n"
                .to_vec(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("empty.txt: holds no text"), "{err}");
    }

    #[test]
    fn alpaca_records_become_prompt_and_response() {
        let json = r#"[
            {"instruction": "Add.", "input": "2 and 3", "output": "5"},
            {"instruction": "Greet.", "input": "", "output": "Hello."},
            {"instruction": "No input field.", "output": "Fine."}
        ]"#;
        let docs = parse_alpaca(json, "a.json").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0].body,
            Body::Example {
                prompt: "### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:\n".into(),
                response: "5".into()
            }
        );
        assert_eq!(
            docs[1].body,
            Body::Example {
                prompt: "### Instruction:\nGreet.\n\n### Response:\n".into(),
                response: "Hello.".into()
            }
        );
        assert_eq!(docs[2].source, "a.json record 3");
    }

    #[test]
    fn malformed_alpaca_records_are_named_by_number() {
        let cases = [
            (
                r#"[{"instruction": "a", "output": "b"}, {"instruction": "c"}]"#,
                "a.json: record 2: missing field `output`",
            ),
            (
                r#"[{"instruction": "a", "input": 7, "output": "b"}]"#,
                "a.json: record 1: invalid type: integer `7`",
            ),
            (
                r#"[{"instruction": "a", "output": "b"}, "text"]"#,
                "a.json: record 2: invalid type: string",
            ),
            (r#"{"instruction": "a"}"#, "a.json: not an Alpaca JSON file"),
            (
                r#"[{"instruction": "a", "output": "b"},"#,
                "a.json: not an Alpaca JSON file",
            ),
            ("[]", "a.json: holds no records"),
        ];
        for (json, want) in cases {
            let err = parse_alpaca(json, "a.json").unwrap_err().to_string();
            assert!(err.starts_with(want), "{json}: {err}");
        }
    }

    #[test]
    fn seed_tasks_give_one_example_per_instance() {
        let jsonl = "{\"id\": \"seed_task_0\", \"instruction\": \"Held out.\", \"instances\": \
                     [{\"input\": \"x\", \"output\": \"y\"}]}\n\
                     {\"id\": \"seed_task_1\", \"name\": \"n\", \"instruction\": \"Rhyme.\", \"instances\": \
                     [{\"input\": \"cat\", \"output\": \"hat\"}, {\"input\": \"\", \"output\": \"dog, log\"}], \
                     \"is_classification\": false}\n\n\
                     {\"instruction\": \"Plain record.\", \"input\": \"\", \"output\": \"ok\"}\n";
        let docs = parse_jsonl(jsonl, "s.jsonl").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].source, "s.jsonl line 2 instance 2");
        assert_eq!(
            docs[1].body,
            Body::Example {
                prompt: prompt("Rhyme.", ""),
                response: "dog, log".into()
            }
        );
        assert_eq!(docs[2].source, "s.jsonl line 4");
        let held = held_out_tasks(jsonl, "s.jsonl").unwrap();
        assert_eq!(
            held,
            [EvalTask {
                source: "s.jsonl line 1".into(),
                instruction: "Held out.".into(),
                input: "x".into(),
                output: "y".into()
            }]
        );
        let trained = trained_tasks(jsonl, "s.jsonl").unwrap();
        assert_eq!(
            trained,
            [EvalTask {
                source: "s.jsonl line 2".into(),
                instruction: "Rhyme.".into(),
                input: "cat".into(),
                output: "hat".into()
            }]
        );
    }

    /// Phase 4's held-out instructions: 20 of the 175 seed tasks, none of
    /// whose instructions is in any training example.
    #[test]
    fn twenty_seed_tasks_are_held_out_and_never_trained_on_twenty_others_trained_on() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/alpaca_seed_tasks.jsonl");
        let text = std::fs::read_to_string(path).unwrap();
        let held = held_out_tasks(&text, "seed").unwrap();
        assert_eq!(held.len(), 20);
        let docs = parse_jsonl(&text, "seed").unwrap();
        for task in &held {
            let needle = format!("### Instruction:\n{}\n", task.instruction);
            assert!(
                docs.iter().all(|d| match &d.body {
                    Body::Example { prompt, .. } => !prompt.contains(&needle),
                    Body::Text(t) => !t.contains(&needle),
                }),
                "{} is trained on",
                task.source
            );
        }
        let trained = trained_tasks(&text, "seed").unwrap();
        assert_eq!(trained.len(), 20);
        for task in &trained {
            let example = Body::Example {
                prompt: prompt(&task.instruction, &task.input),
                response: task.output.clone(),
            };
            // Marked to always train: never drawn into the validation split.
            assert!(
                docs.iter().any(|d| d.body == example && d.always_trains),
                "{} is not trained on",
                task.source
            );
        }
        let probes = docs.iter().filter(|d| d.always_trains).count();
        assert!(probes >= 20 && probes < docs.len() / 4, "{probes}");
    }

    #[test]
    fn malformed_seed_tasks_are_named_by_line() {
        let good = r#"{"instruction": "a", "instances": [{"input": "", "output": "b"}]}"#;
        let cases = [
            (
                format!("{good}\n{{\"instruction\": \"a\", \"instances\": []}}"),
                "s.jsonl: line 2: 'instances' is empty",
            ),
            (
                format!(
                    "{good}\n\n{{\"instruction\": \"a\", \"instances\": [{{\"input\": \"\"}}]}}"
                ),
                "s.jsonl: line 3: missing field `output`",
            ),
            (
                format!("{good}\n{{\"instruction\": \"a\", \"instances\": {{}}}}"),
                "s.jsonl: line 2: invalid type: map",
            ),
            (format!("{good}\n{{broken"), "s.jsonl: line 2: not JSON"),
            (
                format!("{good}\n{{\"prompt\": \"x\"}}"),
                "s.jsonl: line 2: missing field `instruction`",
            ),
            ("\n\n".to_string(), "s.jsonl: holds no records"),
        ];
        for (text, want) in cases {
            let err = parse_jsonl(&text, "s.jsonl").unwrap_err().to_string();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn the_shared_instruction_files_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/");
        let read = |name: &str| {
            std::fs::read(format!("{dir}{name}")).expect("../shared/data (the CI layout)")
        };
        let (alpaca, kind) = parse_file("alpaca_sample.json", read("alpaca_sample.json")).unwrap();
        assert_eq!(
            kind,
            FileKind::Instructions {
                examples: 102,
                held_out: 0
            }
        );
        assert_eq!(alpaca.len(), 102);
        let (seeds, kind) =
            parse_file("alpaca_seed_tasks.jsonl", read("alpaca_seed_tasks.jsonl")).unwrap();
        // 175 tasks, some with several instances; 20 held out.
        assert!(seeds.len() >= 155, "{}", seeds.len());
        assert!(
            matches!(kind, FileKind::Instructions { held_out: 20, .. }),
            "{kind:?}"
        );
        let (book, kind) = parse_file("pg43.txt", read("gutenberg/pg43.txt")).unwrap();
        assert_eq!(
            kind,
            FileKind::Text {
                gutenberg_stripped: true
            }
        );
        let Body::Text(text) = &book[0].body else {
            panic!("text")
        };
        assert!(!text.contains("PROJECT GUTENBERG EBOOK"));
        assert!(text.len() > 100_000);
    }

    /// HumanEval, gzipped as shipped: the 131 training problems become
    /// examples (the prompt known, the canonical body trains); the 33 held
    /// out do not appear.
    #[test]
    fn humaneval_trains_on_four_fifths_and_never_sees_the_held_out() {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/humaneval.jsonl.gz"
        ));
        let corpus = Corpus::read(std::slice::from_ref(&path)).unwrap();
        assert_eq!(
            corpus.files[0].1,
            FileKind::Problems {
                training: 131,
                held_out: 33
            }
        );
        assert!(
            corpus
                .summary()
                .contains("131 HumanEval problem(s) (33 held out")
        );
        let examples: Vec<(&str, &str)> = corpus
            .documents
            .iter()
            .map(|d| match &d.body {
                Body::Example { prompt, response } => (prompt.as_str(), response.as_str()),
                Body::Text(_) => panic!("{}: not an example", d.source),
            })
            .collect();
        // The 33 that `--split trained` scores (task numbers 1, 6, …) always train.
        let probes: Vec<&str> = corpus
            .documents
            .iter()
            .filter(|d| d.always_trains)
            .map(|d| d.source.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(probes.len(), 33);
        assert_eq!(probes[..2], ["HumanEval/1", "HumanEval/6"]);
        let (prompt, body) = examples[1];
        assert!(prompt.starts_with("\n\ndef truncate_number(number: float)"));
        assert!(prompt.trim_end().ends_with("\"\"\""), "{prompt}");
        assert_eq!(body, "    return number % 1.0\n");
        assert!(
            !examples
                .iter()
                .any(|(p, _)| p.contains("def has_close_elements("))
        );
        assert!(
            corpus
                .documents
                .iter()
                .all(|d| !d.source.ends_with("HumanEval/0"))
        );
    }

    /// `{prompt, completion}` lines are examples without the template; a
    /// record whose completion is not text is named by line.
    #[test]
    fn code_examples_are_prompt_and_completion_as_written() {
        let text = concat!(
            r#"{"prompt": "def f(x):\n    \"\"\"Twice x.\"\"\"\n", "completion": "    return 2 * x\n", "source": "a.py"}"#,
            "\n\n",
            r#"{"prompt": "def g():\n", "completion": "    pass\n"}"#,
        );
        let docs = parse_jsonl(text, "code.jsonl").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].source, "code.jsonl line 3");
        assert_eq!(
            docs[0].body,
            Body::Example {
                prompt: "def f(x):\n    \"\"\"Twice x.\"\"\"\n".into(),
                response: "    return 2 * x\n".into()
            }
        );
        let broken = r#"{"prompt": "def f():\n", "completion": 3}"#;
        let err = parse_jsonl(broken, "code.jsonl").unwrap_err().to_string();
        assert!(
            err.contains("code.jsonl") && err.contains("line 1") && err.contains("completion"),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_gzip_file_is_named() {
        let path =
            std::env::temp_dir().join(format!("samnet-broken-{}.txt.gz", std::process::id()));
        std::fs::write(&path, b"\x1f\x8b\x08not really gzip").unwrap();
        let err = Corpus::read(std::slice::from_ref(&path))
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(
            err.contains("samnet-broken") && err.contains("not a readable gzip file"),
            "{err}"
        );
    }
}
