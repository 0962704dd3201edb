"""`zoo analyze`: error table, mistakes and suspected label errors of a finished run."""

from __future__ import annotations

import os

from zoo.cli.errors import one_line_errors, run_guarded


def _cmd_analyze(args):
    from zoo import analysis

    def run():
        result = analysis.analyze(args.run, baseline=args.baseline, data=args.data, label_issues=args.label_issues,
                                  folds=args.folds, fold_epochs=args.fold_epochs, method=args.method, top=args.top,
                                  follow_symlinks=args.follow_symlinks)
        print(result["summary"])
        print(f"zoo: analysis in {os.path.join(args.run, 'analysis')} "
              f"(TensorBoard: tensorboard --logdir {os.path.join(args.run, 'logs')})")
        return 0

    return run_guarded(run)


def add_parser(subparsers) -> None:
    p = one_line_errors(subparsers.add_parser(
        "analyze", help="error analysis of a run: bias / variance / data mismatch, mistakes, label errors",
        description="Writes RUN/analysis/: the error table (baseline, train, train-dev, dev, test error and the "
                    "gaps between them), the dev mistakes (gallery + CSV) and, with --label-issues, suspected "
                    "label errors of the training split (K-fold cross-training + confident learning).",
    ))
    p.add_argument("run", metavar="RUN")
    p.add_argument("--baseline", type=float, metavar="ERROR",
                   help="human-level / Bayes error proxy, e.g. 0.005 (default: the recipe's baseline_error, else 0)")
    p.add_argument("--data", help="the run's source at a new place (default: the recorded one)")
    p.add_argument("--label-issues", dest="label_issues", action="store_true",
                   help="rank suspected label errors (classification, sequence)")
    p.add_argument("--folds", type=int, default=4, help="K for the K-fold cross-training (default 4)")
    p.add_argument("--fold-epochs", dest="fold_epochs", type=int, help="epochs per fold model (default: the run's)")
    p.add_argument("--method", default="confident_joint", choices=("confident_joint", "prune_by_noise_rate"),
                   help="confident-learning rule (default confident_joint)")
    p.add_argument("--top", type=int, default=18, help="examples per gallery (default 18)")
    p.add_argument("--follow-symlinks", dest="follow_symlinks", action="store_true",
                   help="read dataset files behind symlinks that lead outside the dataset folder (refused otherwise)")
    p.set_defaults(func=_cmd_analyze)
