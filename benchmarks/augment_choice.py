"""How well `zoo finetune`'s dev split chose between phase 2 with and without the inherited augmentation.

Scans fine-tuning run directories (each holds both phase-2 runs and `finetune.augment_choice` in config.json)
and scores the choice against the test split: how often the kept run is the better one, and the mean test
accuracy of three policies (always augmented, never, the dev choice).

    .venv/bin/python benchmarks/augment_choice.py '/tmp/m19/*/finetune*'
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics

AUGMENTED, NONE = "phase2-finetune", "phase2-noaug"


def _test(run_dir, phase):
    with open(os.path.join(run_dir, phase, "metrics.json")) as f:
        return json.load(f)["test"]["accuracy"]


def choices(pattern):
    """`[(run dir, kept phase, test of the augmented run, test of the other)]` of every compared run."""
    rows = []
    for run_dir in sorted(glob.glob(pattern)):
        path = os.path.join(run_dir, "config.json")
        if not os.path.isfile(os.path.join(run_dir, "complete")) or not os.path.isfile(path):
            continue
        with open(path) as f:
            choice = json.load(f).get("finetune", {}).get("augment_choice")
        if choice:
            rows.append((run_dir, choice["kept"], _test(run_dir, AUGMENTED), _test(run_dir, NONE)))
    return rows


def summary(rows):
    kept = [a if k == AUGMENTED else n for _, k, a, n in rows]
    other = [n if k == AUGMENTED else a for _, k, a, n in rows]
    return {"runs": len(rows), "kept_better": sum(k > o for k, o in zip(kept, other)),
            "ties": sum(k == o for k, o in zip(kept, other)), "kept_worse": sum(k < o for k, o in zip(kept, other)),
            "mean_test_always_augmented": statistics.mean(a for _, _, a, _ in rows),
            "mean_test_never": statistics.mean(n for _, _, _, n in rows),
            "mean_test_dev_choice": statistics.mean(kept)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pattern", help="a glob of fine-tuning run directories")
    args = p.parse_args(argv)
    rows = choices(args.pattern)
    if not rows:
        raise SystemExit(f"No compared fine-tuning runs match {args.pattern!r}.")
    for run_dir, kept, aug, none in rows:
        print(f"{run_dir}: kept {kept}, test augmented {aug:.3f}, none {none:.3f}")
    print(json.dumps(summary(rows)))


if __name__ == "__main__":
    main()
