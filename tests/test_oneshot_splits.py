"""One-shot on a user's own folder (issue 19 item 2): the source's identity splits, announced and kept.

Tiny class folders of generated 16x16 PNGs (identity i: one random pattern, a few noisy copies).
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

import zoo
from pipelines import core
from zoo.recipes import Recipe
from zoo.tasks.embedding import evaluate_embeddings
from zoo.tasks.embedding import task as embedding_task

RECIPE = Recipe(batch_size=8, extra={"images_per_identity": 2})


def _write_identities(root, names, per_id, seed=0):
    rng = np.random.default_rng(seed)
    for name in names:
        base = rng.uniform(0, 255, (16, 16, 1))
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for k in range(per_id):
            img = np.clip(base + 10 * rng.normal(size=base.shape), 0, 255).astype("uint8")
            tf.io.write_file(os.path.join(root, name, f"{k}.png"), tf.io.encode_png(img))


def _labels(ds, names):
    return [names[int(y)] for _, ys in ds for y in ys.numpy()]


def _split_labels(src, recipe=RECIPE):
    return {s: _labels(embedding_task.make_dataset(src, s, recipe, None, False), src.class_names)
            for s in ("train", "val", "test")}


def test_a_user_test_folder_keeps_its_identities_and_val_is_carved_by_identity(tmp_path, capsys):
    _write_identities(tmp_path / "train", list("01234"), per_id=6)
    _write_identities(tmp_path / "test", list("56789"), per_id=3, seed=1)
    src = core.open_data(str(tmp_path), task="embedding")
    # The reader carves val from train's images, so train and val share identities; test holds its own.
    assert set(src.read.labels("val")) <= set(src.read.labels("train"))
    plan = embedding_task.plan_identities(src, RECIPE)
    assert plan.own == ("test",) and plan.pooled == ("train", "val")
    seen = _split_labels(src)
    assert sorted(seen["test"]) == sorted(list("56789") * 3)  # every test image once, as the user split them
    train, val = set(seen["train"]), set(seen["val"])
    assert train | val == set("01234") and not train & val and len(val) == 2  # val: identities, not images
    assert seen["train"].count(min(train)) == 6  # a train identity keeps its val-carved images too
    out = capsys.readouterr().out
    assert f"zoo: identities: {tmp_path}: train and val share identities, so its classes are split by identity; " \
           "test used as the source holds it" in out
    assert "zoo: identities: test (source's own, 5): 5, 6, 7, 8, 9\n" in out
    assert f"zoo: identities: val (split by identity, 2): {', '.join(sorted(val))}\n" in out
    assert out.count("zoo: identities:") == 4  # announced once, not once per split built


def test_splits_with_disjoint_identities_are_used_as_they_are(tmp_path, capsys):
    _write_identities(tmp_path / "train", ["a", "b", "c", "d"], per_id=2)
    _write_identities(tmp_path / "Validation", ["e", "f"], per_id=2, seed=1)
    _write_identities(tmp_path / "test", ["g", "h", "i"], per_id=2, seed=2)
    src = core.open_data(str(tmp_path), task="embedding")
    plan = embedding_task.plan_identities(src, RECIPE)
    assert plan.own == ("train", "val", "test") and not plan.pooled
    seen = _split_labels(src)
    assert {s: sorted(v) for s, v in seen.items()} == {
        "train": sorted(list("abcd") * 2), "val": ["e", "e", "f", "f"], "test": sorted(list("ghi") * 2)}
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("zoo: identities:")]
    assert lines == [f"zoo: identities: {tmp_path}'s train/val/test splits hold disjoint identities "
                     "(train 4, val 2, test 3 identities); used as they are"]


def test_shared_classes_are_split_by_identity_and_announced_per_split(tmp_path, capsys):
    names = [f"person{i:02d}" for i in range(30)]
    _write_identities(tmp_path, names, per_id=2)  # no split folders: val and test carved from the images
    src = core.open_data(str(tmp_path), task="embedding")
    plan = embedding_task.plan_identities(src, Recipe(extra={"identity_split": [0.6, 0.2, 0.2]}))
    assert plan.pooled == ("train", "val", "test") and not plan.own
    assert [len(plan.ids[s]) for s in ("train", "val", "test")] == [18, 6, 6]
    assert sorted(np.concatenate(list(plan.ids.values()))) == list(range(30))
    seen = _split_labels(src, RECIPE)  # default fractions 0.8/0.1/0.1: 24/3/3
    ids = {s: set(v) for s, v in seen.items()}
    assert [len(ids[s]) for s in ("train", "val", "test")] == [24, 3, 3]
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert all(v.count(n) == 2 for v in seen.values() for n in set(v))  # every image of an identity
    out = capsys.readouterr().out
    assert f"zoo: identities: {tmp_path}: train, val and test share identities, so its classes are split by " \
           "identity\n" in out
    train_line = next(ln for ln in out.splitlines() if ln.startswith("zoo: identities: train (split"))
    assert train_line.endswith(", ... (+12 more)") and train_line.count("person") == embedding_task.SHOWN_NAMES
    # Sources that cannot tell labels without reading (TFDS) are read; same identities.
    blind = dataclasses.replace(src, read=lambda split: src.read(split), cache_key=None)
    assert embedding_task._label_set(blind, "val") == frozenset(src.read.labels("val").tolist())


def test_too_few_identities_are_reported_not_dropped():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 4))
    metrics = evaluate_embeddings(emb, np.array([0, 0, 1, 1, 2, 2]), episodes=20, split="test")
    assert metrics["oneshot_5way"] is None and metrics["oneshot_20way"] is None
    assert metrics["oneshot_5way_skipped"] == "test split has 3 identities with 2+ images, needs >= 5"
    assert 0.0 <= metrics["verification_auc"] <= 1.0
    one = evaluate_embeddings(emb, np.zeros(6, "int64"), ways=(5,), split="val")
    assert one["oneshot_5way_skipped"] == "val split has 1 identity with 2+ images, needs >= 5"
    assert one["verification_auc"] is None and one["verification_accuracy"] is None
    assert one["verification_skipped"].startswith("val split has 1 identity")
    json.dumps([metrics, one], allow_nan=False)


def _no_nan(text):
    def refuse(constant):
        raise AssertionError(f"metrics.json holds {constant}")

    return json.loads(text, parse_constant=refuse)


def test_training_on_a_user_folder_reports_the_user_split(tmp_path, capsys):
    data = tmp_path / "data"
    _write_identities(data / "train", list("012345"), per_id=4)
    _write_identities(data / "test", list("789"), per_id=3, seed=1)  # 3 identities: no 5-way test
    kw = {k: v for k, v in zoo.get_spec("siamese").test_overrides.items() if k != "input_shape"}
    run = zoo.train("siamese", str(data), out=str(tmp_path / "run"), epochs=1, batch_size=8, verbose=0,
                    precision="float32", xla="off", model_kwargs=kw, extra={"images_per_identity": 2})
    with open(os.path.join(run.run_dir, "metrics.json")) as f:
        metrics = _no_nan(f.read())
    test = metrics["test"]
    assert test["oneshot_5way"] is None and test["oneshot_20way"] is None
    assert test["oneshot_5way_skipped"] == "test split has 3 identities with 2+ images, needs >= 5"
    assert 0.0 <= test["verification_auc"] <= 1.0 and test["threshold"] is not None
    assert metrics["val"]["oneshot_5way_skipped"] == "val split has 2 identities with 2+ images, needs >= 5"
    out = capsys.readouterr().out
    assert "zoo: identities: test (source's own, 3): 7, 8, 9" in out
    assert "zoo: test: oneshot_5way skipped: test split has 3 identities with 2+ images, needs >= 5" in out
