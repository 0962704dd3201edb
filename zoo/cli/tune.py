"""`zoo tune`: hyperparameter search (Optuna), each trial a `zoo train` run in its own process."""

from __future__ import annotations

import argparse
import os

from zoo.cli.errors import CLIError, one_line_errors
from zoo.cli.train import _add_train_options, _overrides, parse_sets

# zoo train's own options that are not fixed settings of the trials (tune has its own --out and --resume).
_NOT_FIXED = {"out", "resume", "help"}


def _fixed_argv(args) -> list:
    """The `zoo train` options given to `zoo tune`, as arguments for every trial."""
    probe = argparse.ArgumentParser(add_help=False)
    _add_train_options(probe)
    argv = []
    for action in probe._actions:
        if action.dest in _NOT_FIXED or not action.option_strings:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            argv.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def _space(args, fixed: dict):
    from zoo import search

    given = search.parse_spaces(args.space)
    for name in sorted(set(given) & set(fixed)):
        raise CLIError(f"{name!r} is both fixed (--{name.replace('_', '-')} or --set) and searched (--space); "
                       "drop one.")
    space = {} if args.only_space else {k: d for k, d in search.default_space(args.model).items() if k not in fixed}
    space.update(given)
    if not space:
        raise CLIError("Nothing to search: the space is empty (add --space NAME=KIND(ARGS)).")
    return space


def _cmd_tune(args):
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise CLIError("zoo tune needs Optuna: pip install -e '.[tune]'")
    from zoo import search

    if not args.data:
        raise CLIError("zoo tune needs --data SOURCE (the trials' training data).")
    if args.trials < 1:
        raise CLIError(f"--trials must be >= 1. Received: {args.trials}")
    fixed = _overrides(args)
    s = search.Search(
        model=args.model, data=args.data, out=args.out or os.path.join("tunes", args.model),
        space=_space(args, fixed), trials=args.trials, metric=args.metric, sampler=args.sampler, prune=args.prune,
        storage=args.storage, study=args.study, resume=args.resume, refine=args.refine,
        budget_cpu_s=args.budget_cpu, search_seed=args.search_seed, grid_points=args.grid_points, fixed_argv=_fixed_argv(args), fixed=fixed,
        model_kwargs=parse_sets(args.model_arg), seed=args.seed,
    )
    search.run(s)
    return 0


def add_parser(subparsers) -> None:
    from zoo.search import PRUNERS, SAMPLERS

    p = one_line_errors(subparsers.add_parser(
        "tune", conflict_handler="resolve", help="hyperparameter search: each trial a zoo train run (Optuna)",
        description="Search MODEL's hyperparameters on SOURCE's dev split. zoo train's options are fixed for "
                    "every trial; --space adds to (or replaces) the recipe's own space.",
    ))
    p.add_argument("model")
    p.add_argument("--data", help="source: shapes/<config>, tfds:NAME, an image folder, or a .npz file")
    _add_train_options(p)
    p.add_argument("--out", help="search folder: trials/, the journal, best.json, plots (default tunes/MODEL)")
    p.add_argument("--resume", action="store_true", help="continue the (killed) search in --out / --storage")
    p.add_argument("--trials", type=int, default=20, help="finished trials the study should hold, counting "
                   "every process that works on it (default 20)")
    p.add_argument("--space", action="append", metavar="NAME=KIND(ARGS)",
                   help="lr=log(1e-4,1), momentum=1-log(0.1,0.001), batch_size=choice(32,64,128), "
                        "x=uniform(a,b), n=int(a,b) (repeatable)")
    p.add_argument("--only-space", dest="only_space", action="store_true",
                   help="search only the --space parameters (not the recipe's own space)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    p.add_argument("--prune", choices=PRUNERS, default="median", help="stop poor trials early (per dev epoch)")
    p.add_argument("--metric", help="dev metric to optimise (default accuracy for classifiers, else loss)")
    p.add_argument("--refine", action="store_true",
                   help="coarse to fine: a second stage of --trials around the best trials' ranges")
    p.add_argument("--storage", help="postgresql://USER@HOST/DB or mysql://...: share the study between "
                   "machines (default: a journal file in --out)")
    p.add_argument("--study", help="study name in the storage (default zoo-tune)")
    p.add_argument("--budget-cpu", dest="budget_cpu", type=float, metavar="SECONDS",
                   help="start no trial once the study's trials used this many CPU-seconds")
    p.add_argument("--search-seed", dest="search_seed", type=int, help="sampler seed (default: random)")
    p.add_argument("--grid-points", dest="grid_points", type=int, default=3,
                   help="values per range for --sampler grid (default 3)")
    p.set_defaults(func=_cmd_tune)
