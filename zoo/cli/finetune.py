"""`zoo finetune`: a pretrained backbone, a new head, two phases."""

from __future__ import annotations

import argparse

from zoo.cli.errors import one_line_errors, run_guarded
from zoo.training import policy, rundir
from zoo.transfer import PREPROCESS_MODES
from zoo.transfer import finetune as finetune_lib


def _or_auto(cast, kind):
    """An argparse type: `cast(text)`, or "auto" (a range test / a patience from the phase's length)."""

    def parse(text):
        if text == "auto":
            return text
        try:
            return cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind} or 'auto'. Received: {text!r}") from None

    return parse


_rate = _or_auto(float, "a number")
_patience = _steps = _or_auto(int, "an integer")


def _cmd_finetune(args):
    options = {k: v for k, v in vars(args).items() if k in finetune_lib.DEFAULTS and v is not None}
    if "augment" in options:
        options["augment"] = tuple(a for a in options["augment"].replace("+", ",").split(",") if a and a != "none")
    if options.get("weights") in ("none", "None"):
        options["weights"] = None
    if "lr_decay" in options and options["lr_decay"] in (0, 1):
        options["lr_decay"] = None
    try:
        return run_guarded(lambda: finetune_lib.finetune(args.backbone, args.data, out=args.out, resume=args.resume,
                                                         **({} if args.resume else options)) and 0)
    except rundir.RunComplete as exc:  # nothing to do is not an error
        print(f"zoo: {exc}")
        return 0


def add_parser(subparsers) -> None:
    D = finetune_lib.DEFAULTS  # noqa: N806
    p = one_line_errors(subparsers.add_parser(
        "finetune", help="fine-tune a pretrained backbone (run dir, .keras, keras:NAME, zoo model) on new data",
        description="Phase 1 trains a new head on the frozen backbone; phase 2 unfreezes the top of the backbone "
                    "and fine-tunes at a lower learning rate. Each phase is a budget of optimizer steps, stops early on "
                    "the dev loss and keeps its best weights.",
    ))
    p.add_argument("backbone", help="a zoo run directory, a .keras file, keras:MobileNetV2-style name, or zoo model")
    p.add_argument("--data", help="source: an image folder, a .npz file, tfds:NAME or shapes/<config>")
    p.add_argument("--out", help="run directory (default runs/BACKBONE-finetune-TIMESTAMP)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted fine-tuning run in --out")
    p.add_argument("--weights", help="for keras:/zoo names: imagenet (Keras' cache), none, or a weights file")
    p.add_argument("--image-size", dest="image_size", type=int, help="backbone input size for keras:/zoo names")
    p.add_argument("--preprocess", choices=PREPROCESS_MODES, help="override the backbone's input mapping")
    p.add_argument("--feature-layer", dest="feature_layer", help="layer whose output feeds the new head")
    p.add_argument("--dropout", type=float, help=f"dropout before the new classifier ({D['dropout']})")
    p.add_argument("--head-init", dest="head_init", choices=finetune_lib.HEAD_INITS,
                   help="new head's start: imprint (the training split's class means, Qi et al. 2018) or random "
                        f"({D['head_init']})")
    p.add_argument("--head-steps", dest="head_steps", type=_steps,
                   help=f"phase 1 budget in optimizer steps, turned into epochs; auto: none after imprinting (phase 2 "
                        f"starts from the imprinted head), {finetune_lib.HEAD_STEPS} for a random head ({D['head_steps']})")
    p.add_argument("--head-epochs", dest="head_epochs", type=int, help="phase 1 epochs (overrides --head-steps)")
    p.add_argument("--head-lr", dest="head_lr", type=_rate,
                   help=f"phase 1 learning rate, or auto for a range test ({D['head_lr']})")
    p.add_argument("--finetune-steps", dest="finetune_steps", type=int,
                   help=f"phase 2 budget in optimizer steps ({D['finetune_steps']})")
    p.add_argument("--finetune-min-epochs", dest="finetune_min_epochs", type=int,
                   help=f"phase 2 runs at least this many epochs of a larger training split, up to "
                        f"{finetune_lib.MIN_EPOCHS_STEPS} steps ({D['finetune_min_epochs']})")
    p.add_argument("--finetune-epochs", dest="finetune_epochs", type=int,
                   help="phase 2 epochs (overrides --finetune-steps), 0 for head only")
    p.add_argument("--finetune-lr", dest="finetune_lr", type=_rate,
                   help=f"phase 2 learning rate, or auto for a range test ({D['finetune_lr']})")
    p.add_argument("--finetune-schedule", dest="finetune_schedule", choices=finetune_lib.SCHEDULES,
                   help=f"phase 2's rate over its planned epochs: constant, or cosine to 0 ({D['finetune_schedule']})")
    p.add_argument("--unfreeze", help="phase 2: 'all' (default), a share like 30%%, a backbone layer index like "
                                      "120, or names/globs/blocks like 'conv5_*,block_13'")
    p.add_argument("--train-bn", dest="train_bn", action=argparse.BooleanOptionalAction, default=None,
                   help="train BatchNormalization in phase 2 (default; as fastai and timm); --no-train-bn keeps it "
                        "frozen, in inference mode")
    p.add_argument("--lr-decay", dest="lr_decay", type=float,
                   help="phase 2 layer-wise rate decay per group towards the input, e.g. 0.5 (default: off)")
    p.add_argument("--lr-groups", dest="lr_groups", help="groups for --lr-decay: 'blocks' or a number")
    p.add_argument("--early-stopping", dest="early_stopping", type=_patience, metavar="PATIENCE",
                   help="both phases' patience in epochs on the dev loss (auto: a fifth of the phase, at least 3)")
    p.add_argument("--optimizer", choices=("sgd", "momentum", "rmsprop", "adam", "adamw"))
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--augment", help="comma-separated: flip,crop,affine,color,distort,pad_crop; 'none' for none "
                                     "(default: what the backbone run was trained with, or a zoo model's recipe, "
                                     "kept only if phase 2 without it has no lower dev loss)")
    p.add_argument("--val-split", dest="val_split", type=float, help="dev fraction when the source has none")
    p.add_argument("--seed", type=int)
    p.add_argument("--precision", choices=tuple(x for x in policy.PRECISIONS if x != "auto"))
    p.add_argument("--xla", choices=policy.XLA_CHOICES)
    p.add_argument("--strict", action="store_true", default=None, help="refuse corrupt data instead of skipping it")
    p.add_argument("--follow-symlinks", dest="follow_symlinks", action="store_true", default=None,
                   help="read dataset files behind symlinks that lead outside the dataset folder (refused otherwise)")
    p.set_defaults(func=_cmd_finetune)
