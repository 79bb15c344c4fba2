"""scripts/python-functions-as-examples on a tiny source tree: each
documented top-level function split where HumanEval splits a problem, and
what it leaves out and why."""

import gzip
import json
import pathlib
import subprocess
import tempfile
import unittest

from held_out_problems import write_problems

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "python-functions-as-examples"

MODULE = '''"""A module."""
import math
from typing import List


@staticmethod
def area(r: float) -> float:
    """The area of a circle of radius r.

    >>> round(area(1.0), 2)
    3.14
    """
    squared = r * r
    return math.pi * squared


def undocumented(x):
    return x


def stub(x):
    """Not written yet."""
    pass


def inline(x):
    """Inline."""; return x


def has_close_elements(numbers, threshold):
    """A held-out entry point."""
    return False


def close(numbers, threshold):
    """A held-out canonical line."""
    return sorted(numbers)[0] > threshold


class Box:
    def size(self):
        """A method: not top-level."""
        return 1


def separate_groups(groups: List[str]) -> List[str]:
    """A training problem's name is fine."""
    return [group for group in groups if group]'''


class PythonFunctionsAsExamples(unittest.TestCase):
    def run_script(self, files, *options):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            humaneval = tmp / "humaneval.jsonl"
            write_problems(humaneval)
            src = tmp / "src"
            for name, text in files.items():
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                (src / name).write_text(text)
            out = tmp / "examples.jsonl.gz"
            done = subprocess.run(
                [str(SCRIPT), "--humaneval", str(humaneval), "--out", str(out), *options, str(src)],
                capture_output=True,
                text=True,
            )
            examples = []
            if out.exists():
                with gzip.open(out, "rt") as f:
                    examples = [json.loads(line) for line in f]
            return done, examples

    def test_documented_functions_split_after_their_docstring(self):
        files = {"geometry.py": MODULE, "bad.py": "print 'python 2'\n", ".hidden/x.py": MODULE}
        done, examples = self.run_script(files)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual([e["source"] for e in examples], ["src/geometry.py:7", "src/geometry.py:46"])
        area = examples[0]
        self.assertEqual(
            area["prompt"],
            "import math\nfrom typing import List\n\n\n@staticmethod\n"
            "def area(r: float) -> float:\n"
            '    """The area of a circle of radius r.\n\n'
            "    >>> round(area(1.0), 2)\n    3.14\n"
            '    """\n',
        )
        self.assertEqual(area["completion"], "    squared = r * r\n    return math.pi * squared\n")
        # The last function of a file without a final newline still ends in one.
        self.assertEqual(examples[1]["completion"], "    return [group for group in groups if group]\n")
        for reason in [
            "no docstring): 1",
            "stub body): 1",
            "code on the docstring's line): 1",
            "touches HumanEval's held-out fifth): 2",
            "file does not parse): 1",
        ]:
            self.assertIn(reason, done.stderr)

    def test_long_examples_are_left_out_and_nothing_kept_is_an_error(self):
        done, examples = self.run_script({"geometry.py": MODULE}, "--max-chars", "200")
        self.assertEqual([e["source"] for e in examples], ["src/geometry.py:46"])
        self.assertIn("longer than 200 characters): 1", done.stderr)
        done, examples = self.run_script({"empty.py": "x = 1\n"})
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("no documented functions", done.stderr)


if __name__ == "__main__":
    unittest.main()
