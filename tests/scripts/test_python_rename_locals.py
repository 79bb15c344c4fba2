"""scripts/python-rename-locals on a tiny source tree: each function's
parameters and locals renamed consistently, so the renamed code computes
what the original does, and the names that cannot be renamed at every use
kept."""

import pathlib
import re
import subprocess
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "python-rename-locals"

MODULE = '''import math
LIMIT = 10


def summary(values: list, *rest, scale=2, **options):
    """Largest, scaled mean, squares and a closure of values."""
    global LIMIT
    biggest = values[0]
    for value in values:
        if value > biggest:
            biggest = value
    squares = [item * item for item in values]
    shift = lambda amount: amount + biggest
    def inner(step):
        return step + len(squares)
    try:
        ratio = sum(values) / len(values)
    except ZeroDivisionError as error:
        ratio = str(error)
    import os.path
    label = f"{biggest}:{math.floor(ratio * scale)}"
    return biggest, label, squares, shift(1), inner(0), len(rest), sorted(options), LIMIT


class Box:
    def grow(self, size):
        doubled = size * 2
        return doubled
'''

# Another file: the names the first can be given.
POOL = """def other(alpha, beta, gamma, delta, epsilon, zeta, eta, theta):
    iota = kappa = lam = mu = nu = xi = omicron = pi_ = rho = alpha
    return iota, kappa, lam, mu, nu, xi, omicron, pi_, rho, beta, gamma, delta, epsilon, zeta, eta, theta
"""

BROKEN = "def f(:\n    pass\n"


def run(module):
    space = {}
    exec(compile(module, "<test>", "exec"), space)
    return space["summary"]([3, 1, 4], 5, 6, flag=True), space["Box"]().grow(4)


class RenameLocals(unittest.TestCase):
    def test_renamed_code_computes_the_same(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = pathlib.Path(tmp) / "src"
            (src / "pkg").mkdir(parents=True)
            (src / "pkg" / "mod.py").write_text(MODULE)
            (src / "pool.py").write_text(POOL)
            (src / "broken.py").write_text(BROKEN)
            (src / ".hidden").mkdir()
            (src / ".hidden" / "skipped.py").write_text(MODULE)
            out = pathlib.Path(tmp) / "out"
            done = subprocess.run(
                [SCRIPT, "--out", out, "--seed", "3", src], capture_output=True, text=True, check=True
            )
            self.assertIn("not Python 3 in UTF-8: 1", done.stderr)
            self.assertFalse((out / "src" / ".hidden").exists())
            renamed = (out / "src" / "pkg" / "mod.py").read_text()
            self.assertEqual(run(renamed), run(MODULE))
            docstring = '"""Largest, scaled mean, squares and a closure of values."""'
            code = renamed.replace(docstring, "")
            for gone in ["values", "value", "biggest", "squares", "item", "shift", "amount", "step",
                         "ratio", "label", "rest", "scale", "options", "size", "doubled"]:
                self.assertNotRegex(code, rf"\b{gone}\b", gone)
            # The names with no position of their own, and conventions, stay.
            for kept in ["def inner(", "as error", "str(error)", "global LIMIT", "import os.path",
                         "math.floor", "def grow(self,", "def summary(", "class Box"]:
                self.assertIn(kept, renamed)
            # New names are identifiers the sources bind, not ones the file uses.
            new = set(re.findall(r"\b\w+\b", renamed)) - set(re.findall(r"\b\w+\b", MODULE))
            self.assertTrue(new)
            self.assertLessEqual(new, set(re.findall(r"\b\w+\b", POOL)))
            # The docstring keeps its words; only code changes.
            self.assertIn(docstring, renamed)

    def test_the_same_seed_gives_the_same_names(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = pathlib.Path(tmp) / "src"
            src.mkdir()
            (src / "mod.py").write_text(MODULE)
            (src / "pool.py").write_text(POOL)
            texts = []
            for seed in [1, 1, 2]:
                out = pathlib.Path(tmp) / f"out{len(texts)}"
                subprocess.run([SCRIPT, "--out", out, "--seed", str(seed), src], capture_output=True,
                               check=True)
                texts.append((out / "src" / "mod.py").read_text())
            self.assertEqual(texts[0], texts[1])
            self.assertNotEqual(texts[0], texts[2])


if __name__ == "__main__":
    unittest.main()
