"""scripts/t0-from-self-instruct: T0 records become Alpaca examples (short
prompts only, one-word labels capped per template) and their long
paragraphs, each once, become text."""

import gzip
import json
import pathlib
import subprocess
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "t0-from-self-instruct"

PASSAGE = " ".join(f"word{i}" for i in range(45))


def convert(templates, *extra):
    """Runs the script on the given {file name: records or raw text} and
    returns (the finished process, the examples, the text); both None when
    it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        data = tmp / "templates"
        data.mkdir()
        for name, records in templates.items():
            raw = records if isinstance(records, str) else "".join(json.dumps(r) + "\n" for r in records)
            (data / name).write_text(raw)
        done = subprocess.run(
            [SCRIPT, data, "--examples", tmp / "ex.json.gz", "--text", tmp / "text.txt.gz", *extra],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            return done, None, None
        return done, json.load(gzip.open(tmp / "ex.json.gz", "rt")), gzip.open(tmp / "text.txt.gz", "rt").read()


class T0FromSelfInstruct(unittest.TestCase):
    def test_short_prompts_become_examples_and_long_paragraphs_text_once(self):
        done, examples, text = convert({
            "a_classify.jsonl": [
                {"prompt": f"{PASSAGE}\nWhich label?\n", "completion": f"Label{i}<|endoftext|>"}
                for i in range(3)
            ],
            "b_summarize.jsonl": [
                {"prompt": f"Summarize: {PASSAGE}", "completion": "a short summary<|endoftext|>"},
                {"prompt": "x" * 500, "completion": "a prompt too long"},
                {"prompt": "Nothing to answer", "completion": "<|endoftext|>"},
            ],
        }, "--labels", "2", "--max-prompt", "400")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(examples, [
            {"instruction": f"{PASSAGE}\nWhich label?", "input": "", "output": "Label0"},
            {"instruction": f"{PASSAGE}\nWhich label?", "input": "", "output": "Label1"},
            {"instruction": f"Summarize: {PASSAGE}", "input": "", "output": "a short summary"},
        ])
        self.assertEqual(text, f"{PASSAGE}\n\nSummarize: {PASSAGE}\n")
        self.assertIn("3 examples, 2 paragraphs (91 words)", done.stderr)

    def test_labels_are_capped_per_template(self):
        done, examples, _ = convert({
            "a.jsonl": [
                {"prompt": f"Review {i}. Positive?", "completion": f"Yes{i}<|endoftext|>"}
                for i in range(3)
            ] + [{"prompt": "Title this: a story", "completion": "The story's title"}],
        }, "--labels", "2")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(examples, [
            {"instruction": "Review 0. Positive?", "input": "", "output": "Yes0"},
            {"instruction": "Review 1. Positive?", "input": "", "output": "Yes1"},
            {"instruction": "Title this: a story", "input": "", "output": "The story's title"},
        ])

    def test_short_answers_can_be_left_out(self):
        done, examples, text = convert({
            "a.jsonl": [
                {"prompt": "Positive?", "completion": "Yes"},
                {"prompt": "Title this: a story", "completion": "The title"},
                {"prompt": "Retell: a story", "completion": "It was a long story, told twice"},
                {"prompt": f"Summarize: {PASSAGE}", "completion": "a story of many words"},
            ],
        }, "--min-answer-words", "3")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual([e["output"] for e in examples], [
            "It was a long story, told twice",
            "a story of many words",
        ])
        self.assertEqual(text, f"Summarize: {PASSAGE}\n")

    def test_a_broken_record_names_its_file_and_line(self):
        done, _, _ = convert({"a.jsonl": '{"prompt": "p", "completion": "c"}\n{"prompt": "p"}\n'})
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("a.jsonl line 2: not a {prompt, completion} record", done.stderr)


if __name__ == "__main__":
    unittest.main()
