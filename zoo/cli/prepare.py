"""`zoo prepare`: write a labelled image source once as TFDS shards (`pipelines.prepare`)."""

from __future__ import annotations


def _cmd_prepare(args):
    from pipelines import prepare
    from zoo.contract import check_int, check_number

    if args.num_shards is not None:
        check_int("--num-shards", args.num_shards, min=1)
    if args.val_split is not None:
        check_number("--val-split", args.val_split, min=0, below=1)
    prepare.check_out(args.out)  # before the source is read
    kw = {k: v for k, v in (("val_split", args.val_split), ("task", args.task)) if v is not None}
    if args.strict:
        kw["strict"] = True
    if args.follow_symlinks:
        kw["follow_symlinks"] = True
    where = prepare.prepare(args.source, args.out, num_shards=args.num_shards, beam=args.beam, **kw)
    import pipelines

    spec = pipelines.inspect(args.out)
    counts = ", ".join(f"{s} {n}" for s, n in spec.splits.items())
    print(f"zoo prepare: {args.source} ({spec.task}, {len(spec.class_names)} classes; {counts}) -> {where}; "
          f"train with --data {args.out}")
    return 0


def add_parser(subparsers) -> None:
    """`zoo prepare SOURCE --out DIR`: the source written once as TFDS shards."""
    p = subparsers.add_parser(
        "prepare", help="write an image folder or a YOLO/COCO/VOC/mask folder once as TFDS shards",
        description="Reads SOURCE as training would (same files, splits and class names; corrupt images skipped "
                    "with a warning) and writes it as a TFDS dataset under DIR: OUT/<name>/1.0.0/ with "
                    "dataset_info.json and record shards. Train from it with --data DIR: no folder scan, no probe.",
    )
    p.add_argument("source", help="an image folder (one subfolder per class) or a YOLO/COCO/VOC/mask folder")
    p.add_argument("--out", required=True, help="a new or empty folder (nothing is overwritten)")
    p.add_argument("--num-shards", dest="num_shards", type=int,
                   help="record files per split (default: the CPU count, at least 2)")
    p.add_argument("--beam", action="store_true", help="write with Apache Beam's DirectRunner (needs apache-beam)")
    p.add_argument("--val-split", dest="val_split", type=float, help="dev fraction held out when SOURCE has none")
    p.add_argument("--task", choices=("classification", "detection", "segmentation"), help="default: detected")
    p.add_argument("--strict", action="store_true", help="refuse corrupt images instead of skipping them")
    p.add_argument("--follow-symlinks", dest="follow_symlinks", action="store_true",
                   help="read dataset files behind symlinks that lead outside the dataset folder (refused otherwise)")
    p.set_defaults(func=_cmd_prepare)
