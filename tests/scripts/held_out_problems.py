"""Two HumanEval records for the data scripts' tests: HumanEval/0 is held
out (task number divisible by 5), HumanEval/1 is not."""

import json

PROBLEMS = [
    {
        "task_id": "HumanEval/0",
        "entry_point": "has_close_elements",
        "canonical_solution": "    return sorted(numbers)[0] > threshold\n",
    },
    {
        "task_id": "HumanEval/1",
        "entry_point": "separate_groups",
        "canonical_solution": "    return [group for group in groups if group]\n",
    },
]


def write_problems(path):
    """PROBLEMS as JSON Lines at `path`."""
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
