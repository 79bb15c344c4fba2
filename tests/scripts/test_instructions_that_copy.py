"""scripts/instructions-that-copy on two tiny books: every kind of example
answers from its own prompt as its instruction says, the sentences come
from the part of a book that trains (never its header or last fifth), and
a book it cannot read is named in the error."""

import collections
import gzip
import json
import os
import pathlib
import re
import subprocess
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "instructions-that-copy"

HEADER = "The Project Gutenberg eBook of A Test\n\n*** START OF THE PROJECT GUTENBERG EBOOK A TEST ***\n\n"
FOOTER = "\n\n*** END OF THE PROJECT GUTENBERG EBOOK A TEST ***\nLicence text that is never a sentence here.\n"
TRAINED = [
    "The old captain walked slowly along the windy harbour wall.",
    "Mrs. Fairfax poured the tea and spoke of the weather in London.",
    "Nobody in the village remembered the winter when the river froze.",
    "She opened the letter carefully and read every single line twice.",
    "Beyond the northern hills stood a lonely farmhouse with green shutters.",
    "The children gathered chestnuts beneath the enormous spreading branches.",
    "Every morning the baker carried warm bread through the narrow streets.",
    "Thunder rolled across the valley while the shepherds hurried homeward.",
]
HELD_OUT = "Zebras never appear in the validated part of this little book."


def book(sentences, tail):
    paragraphs = [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)]
    return HEADER + "\n\n".join(paragraphs) + "\n\n" + tail + FOOTER


def swapped_neighbours(wrong, right):
    diffs = [i for i, (a, b) in enumerate(zip(wrong, right)) if a != b]
    return len(wrong) == len(right) and len(diffs) == 2 and diffs[1] == diffs[0] + 1 and (
        wrong[diffs[0]] == right[diffs[1]] and wrong[diffs[1]] == right[diffs[0]]
    )


class InstructionsThatCopy(unittest.TestCase):
    def run_script(self, *args):
        return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True)

    def test_each_kind_answers_from_its_prompt(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            # The held-out sentence lies inside the last fifth of each book.
            tail = " ".join([HELD_OUT] * 5)
            (tmp / "a.txt").write_text(book(TRAINED[:4] * 10, tail))
            (tmp / "b.txt").write_text(book(TRAINED[4:] * 10, tail))
            out = tmp / "copy.json.gz"
            result = self.run_script("--out", out, "--count", 700, "--seed", 3, tmp / "a.txt", tmp / "b.txt")
            self.assertEqual(result.returncode, 0, result.stderr)
            made = json.loads(gzip.decompress(out.read_bytes()))
        self.assertEqual(len(made), 700)
        kinds = collections.Counter()
        for example in made:
            instruction, given, output = example["instruction"], example["input"], example["output"]
            self.assertNotIn("Zebras", given + output)
            self.assertNotIn("Gutenberg", given + output)
            if instruction.startswith("Repeat"):
                self.assertEqual(given, output)
                self.assertIn(output, TRAINED)
            elif instruction.startswith("Correct"):
                self.assertIn(output, TRAINED)
                pairs = list(zip(given.split(" "), output.split(" ")))
                self.assertEqual(len(given.split(" ")), len(output.split(" ")))
                wrong = [(a, b) for a, b in pairs if a != b]
                self.assertTrue(1 <= len(wrong) <= 3, example)
                self.assertTrue(all(swapped_neighbours(a, b) for a, b in wrong), example)
            elif instruction.startswith("Complete"):
                self.assertTrue(given.endswith(" ..."))
                self.assertTrue(output.startswith(given[: -len(" ...")] + " "), example)
                self.assertIn(output, TRAINED)
            elif instruction.startswith("Put the words"):
                self.assertIn(output, TRAINED)
                self.assertEqual(sorted(given.lower().split()), sorted(output.rstrip(".").lower().split()))
                self.assertNotEqual(given.lower(), output.rstrip(".").lower())
            elif instruction.startswith("List the words"):
                listed = [line[2:] for line in output.split("\n")]
                self.assertTrue(all(line.startswith("- ") for line in output.split("\n")))
                self.assertTrue(all(len(w) > 6 and w in given for w in listed), example)
                self.assertEqual(len({w.lower() for w in listed}), len(listed))
            elif instruction.startswith("Write a sentence"):
                self.assertEqual(given, "")
                quoted = re.findall(r'"([^"]+)"', instruction)
                self.assertEqual(len(quoted), 3)
                self.assertTrue(all(w in output for w in quoted), example)
            elif instruction.startswith("What is the first sentence"):
                self.assertTrue(given.startswith(output + " "), example)
                self.assertIn(output, TRAINED)
            else:
                self.fail(f"unknown kind: {instruction}")
            kinds[instruction.split(" ")[0]] += 1
        self.assertEqual(len(kinds), 7, kinds)
        # A title's full stop does not end a sentence.
        self.assertIn(TRAINED[1], {e["output"] for e in made})

    def test_the_same_seed_writes_the_same_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            # Words that start alike ("stone", "stones", "stonework") tie
            # where a sentence is searched for them.
            ties = [
                "Stones and stonework lined the stone bridge near the stonemason's yard.",
                "Painters painted paintings while the painter's brother painted fences.",
            ]
            (tmp / "a.txt").write_text(book(ties * 20, HELD_OUT))
            written = []
            # Set order follows PYTHONHASHSEED: of eight, some differ.
            for hash_seed in map(str, range(1, 9)):
                out = tmp / f"copy-{hash_seed}.json"
                result = subprocess.run(
                    [str(SCRIPT), "--out", str(out), "--count", "200", str(tmp / "a.txt")],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONHASHSEED": hash_seed},
                )
                self.assertEqual(result.returncode, 0, result.stderr)
                written.append(out.read_bytes())
        self.assertEqual(len(set(written)), 1)

    def test_a_sentence_of_one_word_repeated_is_not_unscrambled(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            (tmp / "a.txt").write_text(book(["Oh Oh Oh Oh Oh Oh."] * 40, HELD_OUT))
            out = tmp / "copy.json"
            # It has no other order: shuffling until one comes never ends.
            result = subprocess.run(
                [str(SCRIPT), "--out", str(out), "--count", "50", str(tmp / "a.txt")],
                capture_output=True,
                text=True,
                timeout=30,
            )
            self.assertEqual(result.returncode, 0, result.stderr)
            made = json.loads(out.read_text())
        self.assertEqual(len(made), 50)
        self.assertFalse(any(e["instruction"].startswith("Put the words") for e in made))

    def test_a_probe_from_the_validated_part_as_seed_tasks(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            (tmp / "a.txt").write_text(book(TRAINED * 5, " ".join([HELD_OUT] * 5)))
            out = tmp / "probe.jsonl"
            result = self.run_script("--out", out, "--count", 30, "--validation-part", tmp / "a.txt")
            self.assertEqual(result.returncode, 0, result.stderr)
            tasks = [json.loads(line) for line in out.read_text().splitlines()]
        self.assertEqual(len(tasks), 30)
        for task in tasks:
            self.assertEqual(sorted(task), ["instances", "instruction"])
            (instance,) = task["instances"]
            self.assertIn("Zebras", instance["output"])

    def test_a_book_it_cannot_read_is_named(self):
        with tempfile.TemporaryDirectory() as tmp:
            missing = pathlib.Path(tmp) / "missing.txt"
            result = self.run_script("--out", pathlib.Path(tmp) / "x.json", missing)
            self.assertNotEqual(result.returncode, 0)
            self.assertIn("missing.txt", result.stderr)
            empty = pathlib.Path(tmp) / "empty.txt"
            empty.write_text("Short. Lines.\n")
            result = self.run_script("--out", pathlib.Path(tmp) / "x.json", empty)
            self.assertNotEqual(result.returncode, 0)
            self.assertIn("empty.txt: no sentence", result.stderr)


if __name__ == "__main__":
    unittest.main()
