"""scripts/books-from-gitenberg on three tiny snapshots and a missing one: a
modern edition whose start marker wraps, an old one with the "small print"
header, one whose text is not the size its manifest row says, and a row
whose snapshot was never fetched."""

import pathlib
import subprocess
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "books-from-gitenberg"

STORY = "It was a dark night.\n\nThe end came soon."

MODERN = (
    "\ufeffThe Project Gutenberg EBook of A Tale\r\nlicence words\r\n\r\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK A TALE,\r\nCOMPLETE ***\r\n\r\n"
    + STORY.replace("\n", "\r\n")
    + "\r\n\r\nEnd of the Project Gutenberg EBook of A Tale\r\n\r\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK A TALE ***\r\nMore licence.\r\n"
)

OLD = (
    "Project Gutenberg Etext of A Tale\n\n"
    "***START**THE SMALL PRINT!**FOR PUBLIC DOMAIN ETEXTS**START***\nsmall print\n"
    "*END THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.12.12.00*END*\n\n"
    + STORY
    + "\n\nEnd of Project Gutenberg Etext of A Tale\n"
)


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def snapshot(mirror, name, files):
    """A snapshot as `fetch` writes one: DIR/GITenberg+NAME/repo, a clone."""
    repo = mirror / f"GITenberg+{name}" / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    for file, text in files.items():
        (repo / file).write_bytes(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "book")
    return git(repo, "rev-parse", "HEAD").stdout.decode().strip()


class BooksFromGitenberg(unittest.TestCase):
    def test_cuts_both_header_forms_and_reports_a_book_of_the_wrong_size(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            mirror = tmp / "mirror"
            size = len(STORY.encode())
            rows = [
                # The UTF-8 edition is preferred to the Latin-1 one beside it.
                ("1", "Modern_1", {"1-0.txt": MODERN.encode(), "1-8.txt": b"\xe9"}, size),
                ("2", "Old_2", {"2.txt": OLD.encode("latin-1")}, size),
                ("3", "Wrong_3", {"3.txt": OLD.encode()}, 10 * size),
            ]
            manifest = tmp / "manifest.tsv"
            lines = ["pg_id\ttitle\trepository\tcommit\tbytes\tlicence"]
            for pg_id, name, files, expected in rows:
                commit = snapshot(mirror, name, files)
                lines.append(
                    f"{pg_id}\tA Tale\thttps://github.com/GITenberg/{name}\t{commit}\t{expected}\tpd"
                )
            # A row whose snapshot was never fetched.
            lines.append(f"4\tA Tale\thttps://github.com/GITenberg/Absent_4\t{commit}\t{size}\tpd")
            manifest.write_text("\n".join(lines) + "\n")
            out = tmp / "out"
            result = subprocess.run(
                [SCRIPT, "--manifest", manifest, "--mirror", mirror, "--out", out, "--count", "4"],
                capture_output=True, text=True,
            )
            self.assertEqual(result.returncode, 1)
            self.assertEqual(sorted(p.name for p in out.iterdir()), ["pg1.txt", "pg2.txt"])
            self.assertEqual((out / "pg1.txt").read_text(encoding="utf-8"), STORY)
            self.assertEqual((out / "pg2.txt").read_text(encoding="utf-8"), STORY)
            self.assertIn("2 of 4 books written", result.stdout)
            self.assertIn(f"missing: Absent_4 (no snapshot at {mirror / 'GITenberg+Absent_4' / 'repo'})", result.stderr)
            self.assertIn(f"missing: Wrong_3 (expected {10 * size} bytes; 3.txt: {size} bytes", result.stderr)


if __name__ == "__main__":
    unittest.main()
