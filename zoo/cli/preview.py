"""`zoo preview`: a PNG grid of samples with their boxes, masks or labels."""

from __future__ import annotations

from zoo.cli.errors import check_out_file


def _cmd_preview(args):
    from pipelines.core import inspect
    from pipelines.preview import preview
    from zoo.contract import check_int, check_number

    # Every argument is checked before the source is read.
    check_int("-n", args.n, min=1)
    if args.image_size is not None:
        check_int("--image-size", args.image_size, min=1)
    if args.val_split is not None:
        check_number("--val-split", args.val_split, min=0, below=1)
    check_out_file(args.out)
    augment = tuple(a for a in (args.augment or "").replace("+", ",").split(",") if a and a != "none")
    kw = {"val_split": args.val_split} if args.val_split is not None else {}
    if args.image_size is not None:
        kw["image_size"] = (args.image_size, args.image_size)
    if args.task:
        kw["task"] = args.task
    if args.follow_symlinks:
        kw["follow_symlinks"] = True
    spec = inspect(args.data, **kw)
    if not spec.splits.get(args.split):
        have = ", ".join(s for s, n in spec.splits.items() if n)
        raise ValueError(f"Source {args.data!r} has no {args.split!r} split; it has: {have}.")
    path = preview(args.data, args.out, split=args.split, n=args.n, augment=augment, seed=args.seed, **kw)
    drawn = {"detection": "boxes", "segmentation": "masks"}.get(spec.task, "labels")
    print(f"zoo preview: {min(args.n, spec.splits[args.split])} {args.split} samples of {spec.source} "
          f"({spec.task}, {drawn} drawn) -> {path}")
    return 0


def add_parser(subparsers) -> None:
    """`zoo preview --data SOURCE`: a PNG grid of samples with their boxes, masks or labels."""
    p = subparsers.add_parser(
        "preview", help="draw a grid of samples with their boxes, masks or labels (check labels before training)",
        description="Writes a PNG of samples from SOURCE as the pipeline yields them: boxes for YOLO/COCO/VOC "
                    "folders, mask outlines for mask folders, class names for classification.",
    )
    p.add_argument("--data", required=True, help="source: a YOLO/COCO/VOC/mask folder, an image folder, shapes/...")
    p.add_argument("--out", default="preview.png", help="PNG path (default preview.png)")
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("-n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--augment", help="comma-separated augmentations to apply, e.g. flip,crop,color")
    p.add_argument("--image-size", dest="image_size", type=int, help="resize to SIZE x SIZE")
    p.add_argument("--task", choices=("classification", "detection", "segmentation"), help="default: detected")
    p.add_argument("--val-split", dest="val_split", type=float, help="dev fraction when the source has none")
    p.add_argument("--follow-symlinks", dest="follow_symlinks", action="store_true",
                   help="read dataset files behind symlinks that lead outside the dataset folder (refused otherwise)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_preview)
