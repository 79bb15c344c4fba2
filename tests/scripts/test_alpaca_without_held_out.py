"""scripts/alpaca-without-held-out: records near phase 4's held-out seed
tasks (every ninth, from the first) are dropped, the others kept as they are."""

import json
import pathlib
import subprocess
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "alpaca-without-held-out"


def seed(i, instruction, output):
    return {"id": f"seed_task_{i}", "instruction": instruction,
            "instances": [{"input": "", "output": output}]}


class AlpacaWithoutHeldOut(unittest.TestCase):
    def test_drops_what_restates_a_held_out_task(self):
        # Seed tasks 0 and 9 are held out; 1..8 train.
        seeds = [seed(0, "Name three primary colours.", "Red, yellow and blue.")]
        seeds += [seed(i, f"Trained task number {i}.", f"Answer {i}.") for i in range(1, 9)]
        seeds += [seed(9, "Sort these numbers in ascending order.", "1, 2, 3")]
        records = [
            {"instruction": "Name three of the primary colours!", "input": "", "output": "Red."},
            {"instruction": "Write a haiku about rain.", "input": "", "output": "Red, yellow and blue."},
            {"instruction": "Trained task number 4.", "input": "", "output": "Answer 4."},
            {"instruction": "Sort the words alphabetically.", "input": "b a", "output": "a b"},
        ]
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            (tmp / "seed.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
            (tmp / "alpaca.json").write_text(json.dumps(records))
            run = subprocess.run(
                [SCRIPT, "--seed-tasks", tmp / "seed.jsonl", "--out", tmp / "kept.json",
                 tmp / "alpaca.json"],
                check=True, capture_output=True, text=True,
            )
            kept = json.loads((tmp / "kept.json").read_text())
        self.assertEqual(kept, records[2:])
        self.assertIn("2 of 4 records kept; dropped 1 near a held-out instruction", run.stderr)
        self.assertIn("1 with a held-out output", run.stderr)


if __name__ == "__main__":
    unittest.main()
