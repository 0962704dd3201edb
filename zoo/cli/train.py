"""`zoo train`, `zoo evaluate` and `zoo demo`."""

from __future__ import annotations

import ast
import json
import os
import re

from zoo.cli.errors import one_line_errors, run_guarded
from zoo.recipes import OPTIMIZERS
from zoo.training import policy

DEMO_MODEL = "resnet20"
DEMO_DATA = "shapes/classification"
# CIFAR ResNet-20 on the shapes resized to 32x32 (the pipeline resizes to `input_shape`): 94-96% test
# accuracy in 10 epochs (~240 CPU-seconds in all on two cores); LeNet-5 (relu + max pooling) gets ~64% here.
# Adam with cosine decay converges far faster than the CIFAR recipe's 182-epoch SGD schedule.
DEMO_SETTINGS = {"epochs": 10, "batch_size": 64, "optimizer": "adam", "lr": 2e-3, "weight_decay": 0.0,
                 "lr_schedule": "cosine", "augment": ("flip",), "normalization": "scale"}
DEMO_KWARGS = {"input_shape": (32, 32, 3)}


LITERAL_START = re.compile(r"[\[{(\"']|[+-]?\.?\d")  # a number, container or quoted string was meant
WORDS = {"none": None, "null": None, "true": True, "false": False}


def _parse_value(text, key="value", flag="--set"):
    """A Python literal; a bare word (`adam`, `flip,crop`) stays a string, a broken literal is refused."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    if text.lower() in WORDS:
        return WORDS[text.lower()]
    if LITERAL_START.match(text.strip()):
        raise ValueError(f"{flag} {key}={text!r} is not a valid Python literal (a number, 'string', [list] or "
                         f"{{dict}}); quote a string as {key}='...'.")
    return text


def parse_sets(items, flag="--set") -> dict:
    """`["lr=0.1", "augment=flip,crop"]` -> `{"lr": 0.1, "augment": ("flip", "crop")}`."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes key=value. Received: {item!r}")
        parsed = _parse_value(value, key.strip(), flag)
        if key == "augment" and isinstance(parsed, str):
            parsed = tuple(a for a in parsed.split(",") if a)
        out[key.strip()] = parsed
    return out


def _overrides(args) -> dict:
    out = parse_sets(args.set)
    for key, attr in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"), ("optimizer", "optimizer"),
                      ("val_split", "val_split"), ("early_stopping", "early_stopping"), ("train_dev", "train_dev")):
        value = getattr(args, attr)
        if value is not None:
            out[key] = value
    if args.lr_schedule is not None:
        out["lr_schedule"] = None if args.lr_schedule == "none" else args.lr_schedule
    if args.augment is not None:
        out["augment"] = tuple(a for a in args.augment.replace("+", ",").split(",") if a and a != "none")
    return out


def _cmd_train(args):
    from zoo.training import loop

    overrides = _overrides(args)
    model_kwargs = parse_sets(args.model_arg, "--model-arg")
    data, seed = args.data, args.seed
    from zoo.training import rundir

    if args.from_tune:  # the best trial's settings and parameters; options given here win
        from zoo import search

        tuned = search.from_tune(args.from_tune, args.model)
        overrides, model_kwargs = {**tuned["overrides"], **overrides}, {**tuned["model_kwargs"], **model_kwargs}
        data = data or tuned["data"]
        seed = tuned["seed"] if seed is None else seed
    try:
        return run_guarded(lambda: loop.train(
            args.model, data, out=args.out, resume=args.resume, precision=args.precision, xla=args.xla,
            seed=seed, strict=args.strict, model_kwargs=model_kwargs or None, strategy=args.strategy,
            follow_symlinks=args.follow_symlinks, **overrides,
        ) and 0)
    except rundir.RunComplete as exc:  # nothing to do is not an error
        print(f"zoo: {exc}")
        return 0


def _cmd_evaluate(args):
    from zoo.training import loop

    def run():
        metrics = loop.evaluate(args.run, args.data, split=args.split, batch_size=args.batch_size,
                                follow_symlinks=args.follow_symlinks)
        if args.json:
            print(json.dumps(metrics))
        else:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
        return 0

    return run_guarded(run)


def _cmd_demo(args):
    from zoo.training import loop

    out = args.out or os.path.join("runs", "demo")
    if os.path.isdir(out) and os.listdir(out):
        from zoo.training.rundir import default_dir

        out = default_dir("demo")

    def run():
        epochs = args.epochs or DEMO_SETTINGS["epochs"]
        size = "x".join(map(str, DEMO_KWARGS["input_shape"][:2]))
        print(f"zoo demo: {DEMO_MODEL} on the built-in {DEMO_DATA} data at {size} ({epochs} epochs)")
        result = loop.train(DEMO_MODEL, DEMO_DATA, out=out, model_kwargs=DEMO_KWARGS, seed=args.seed,
                            precision=args.precision, **{**DEMO_SETTINGS, "epochs": epochs})
        metrics = loop.evaluate(result.run_dir, split="test")
        print(f"zoo demo: test accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['f1']:.3f} "
              f"(zoo evaluate {result.run_dir} --split test)")
        exported = None
        try:
            from zoo.export import export
        except ImportError:
            export = None
        if export is not None:
            exported = export(result.run_dir, args.export_dir)
        print(f"zoo demo: plots    {os.path.join(result.run_dir, 'curves.png')}, "
              f"{os.path.join(result.run_dir, 'confusion_matrix.png')}")
        print(f"zoo demo: model    {os.path.join(result.run_dir, 'model.keras')}")
        if exported is not None:
            print(f"zoo demo: exported {exported} (TF Serving layout)")
        return 0

    return run_guarded(run)


def add_follow_symlinks(p):
    p.add_argument("--follow-symlinks", dest="follow_symlinks", action="store_true",
                   help="read dataset files behind symlinks that lead outside the dataset folder (refused otherwise)")


def _add_train_options(p):
    p.add_argument("--epochs", type=int, help="passes over the training split (recipe default)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="global batch size")
    p.add_argument("--lr", type=float, help="initial learning rate")
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--lr-schedule", dest="lr_schedule",
                   choices=("none", "inverse_time", "exponential", "inverse_sqrt", "step", "piecewise", "cosine",
                            "plateau"),
                   help="learning-rate decay (arguments via --set schedule_args={...})")
    p.add_argument("--augment", help="comma-separated: flip,crop,affine,color,distort (or pad_crop); 'none' for none; "
                   "strengths with --set augment_args={...}")
    p.add_argument("--early-stopping", dest="early_stopping", type=int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without dev improvement (best weights restored)")
    p.add_argument("--val-split", dest="val_split", type=float, help="dev fraction when the source has none")
    p.add_argument("--train-dev", dest="train_dev", type=float, metavar="FRACTION",
                   help="hold out this fraction of the training split as a train-dev set (never trained on; "
                        "zoo analyze tells variance from data mismatch with it)")
    p.add_argument("--seed", type=int, help="seed for weights, shuffling and augmentation (default 0)")
    p.add_argument("--precision", choices=policy.PRECISIONS, default="auto",
                   help="auto: mixed_bfloat16 on AMX/AVX512-BF16 CPUs, mixed_float16 on tensor-core GPUs")
    p.add_argument("--xla", choices=policy.XLA_CHOICES, default="auto", help="auto: on for GPU, off on CPU")
    p.add_argument("--out", help="run directory (default runs/MODEL-TIMESTAMP)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--strict", action="store_true", help="refuse corrupt data instead of skipping it")
    add_follow_symlinks(p)
    p.add_argument("--strategy", choices=("auto", "default", "onedevice", "mirrored", "multiworker"), default="auto",
                   help="tf.distribute strategy: auto = multi-worker under a TF_CONFIG cluster, mirrored with "
                        "several GPUs, else one device")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any recipe field (repeatable)")
    p.add_argument("--model-arg", dest="model_arg", action="append", metavar="KEY=VALUE",
                   help="builder keyword, e.g. --model-arg width=0.5 (repeatable)")


def add_parser(subparsers) -> None:
    p = one_line_errors(subparsers.add_parser(
        "train", help="train a model on a data source into a run directory",
        description="Train MODEL on SOURCE with its recipe's defaults; options override them.",
    ))
    p.add_argument("model")
    p.add_argument("--data", help="source: shapes/<config>, tfds:NAME, an image folder, or a .npz file")
    _add_train_options(p)
    p.add_argument("--from-tune", dest="from_tune", metavar="TUNE_DIR",
                   help="train the best configuration of a zoo tune search (its best.json)")
    p.set_defaults(func=_cmd_train)

    p = one_line_errors(subparsers.add_parser("evaluate", help="evaluate a run (or .keras file) on a split"))
    p.add_argument("run", metavar="RUN_OR_MODEL")
    p.add_argument("--data", help="source (default: the run's own)")
    p.add_argument("--split", default="test", choices=("train", "train_dev", "val", "test"))
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_follow_symlinks(p)
    p.set_defaults(func=_cmd_evaluate)

    p = one_line_errors(subparsers.add_parser(
        "demo", help="train, evaluate and export a small model on the built-in shapes data (a few minutes)",
    ))
    p.add_argument("--out", help="run directory (default runs/demo)")
    p.add_argument("--export-dir", dest="export_dir", default=os.path.join("saved_models", "demo"))
    p.add_argument("--epochs", type=int, help=f"default {DEMO_SETTINGS['epochs']}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=policy.PRECISIONS, default="auto")
    p.set_defaults(func=_cmd_demo)
