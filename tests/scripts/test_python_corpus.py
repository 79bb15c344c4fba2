"""scripts/python-corpus-from-git on two tiny repositories: what it keeps,
what it drops and why, and the manifest it writes."""

import pathlib
import subprocess
import tempfile
import unittest

from held_out_problems import write_problems

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "python-corpus-from-git"

FILES = {
    "LICENSE": "MIT License\n\nCopyright (c) 2026 Someone\n",
    "solve.py": "def double(x):\n    return x * 2\n",
    "trained_name.py": "def separate_groups(groups):\n    return [group for group in groups if group]\n",
    "stub.py": 'def todo(x):\n    """Say what it does."""\n    pass\n',
    "entry.py": "def has_close_elements(numbers, threshold):\n    return False\n",
    "line.py": "def close(numbers, threshold):\n    return sorted(numbers)[0] > threshold\n",
    "python2.py": "print 'hello'\n",
    ".meta/example.py": "def triple(x):\n    return x * 3\n",
    "notes.txt": "not Python\n",
}


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_repo(root, files, links=()):
    root.mkdir()
    git(root, "init", "-q")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name, target in links:
        (root / name).symlink_to(target)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "files")


class PythonCorpusFromGit(unittest.TestCase):
    def test_keeps_permissive_python_outside_the_held_out_fifth(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            # A link's blob is its target's path, "solve.py": Python that compiles.
            make_repo(tmp / "mit", FILES, links=[("link.py", "solve.py")])
            make_repo(tmp / "gpl", {"LICENSE": "GNU GENERAL PUBLIC LICENSE\n", "a.py": "x = 1\n"})
            problems = tmp / "problems.jsonl"
            write_problems(problems)
            out = tmp / "out"
            subprocess.run(
                [SCRIPT, "--humaneval", problems, "--out", out,
                 f"someone/mit={tmp / 'mit'}", f"someone/gpl={tmp / 'gpl'}"],
                check=True, capture_output=True,
            )
            kept = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
            self.assertEqual(kept, [
                "manifest.tsv",
                "someone+mit/LICENSE",
                "someone+mit/meta/example.py",
                "someone+mit/solve.py",
                "someone+mit/trained_name.py",
            ])
            rows = [line.split("\t") for line in (out / "manifest.tsv").read_text().splitlines()]
            self.assertEqual(rows[0], ["repository", "commit", "licence", "files", "bytes", "dropped"])
            mit, gpl = rows[1], rows[2]
            self.assertEqual((mit[0], mit[2], mit[3]), ("someone/mit", "MIT License", "3"))
            self.assertEqual(len(mit[1]), 40)
            self.assertEqual(
                mit[5],
                "1 held-out entry point, 1 held-out line, 1 not Python 3 in UTF-8, 1 stub",
            )
            self.assertEqual((gpl[0], gpl[3], gpl[5]), ("someone/gpl", "0", "all: not permissive"))

    def test_a_repository_needs_a_name(self):
        run = subprocess.run(
            [SCRIPT, "--humaneval", "x.jsonl", "--out", "out", "just-a-path"],
            capture_output=True, text=True,
        )
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("just-a-path: give OWNER/NAME=GIT_DIR", run.stderr)


if __name__ == "__main__":
    unittest.main()
