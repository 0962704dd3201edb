"""One-shot learning: losses (hand-computed cases, numeric gradients), sampler, evaluation, siamese views."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.recipes import Recipe
from zoo.tasks.embedding import (
    UNKNOWN,
    ContrastiveLoss,
    Gallery,
    TripletLoss,
    evaluate_embeddings,
    filter_identities,
    identify,
    oneshot_accuracy,
    pairwise_distances,
    pk_batches,
    roc_auc,
    sample_pairs,
    select_threshold,
    split_identities,
    verification_accuracy,
    verify,
)
from zoo.tasks.embedding import task as embedding_task

# Four 1-D embeddings, two identities. Squared distances:
#   d01=1, d02=4, d03=16, d12=1, d13=9, d23=4.
X = np.array([[0.0], [1.0], [2.0], [4.0]], "float32")
Y = np.array([0, 0, 1, 1], "int32")


def test_pairwise_distances():
    d2 = np.asarray(pairwise_distances(X))
    np.testing.assert_allclose(d2, [[0, 1, 4, 16], [1, 0, 1, 9], [4, 1, 0, 4], [16, 9, 4, 0]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(pairwise_distances(X, squared=False)), np.sqrt(d2), atol=1e-6)


@pytest.mark.parametrize(
    "mining, expected",
    [
        # batch_all: the triplets with a positive loss (margin 2) are
        #   (a=1, p=0, n=2): 1-1+2=2, (2, 3, 0): 4-4+2=2, (2, 3, 1): 4-1+2=5 -> mean 3.
        ("batch_all", 3.0),
        # semi_hard, per (a, p): (0,1): closest negative farther than 1 is 4 -> 0; (1,0): 9 -> 0;
        #   (2,3): no negative farther than 4, take the farthest (4) -> 2; (3,2): 9 -> 0. Mean 2/4.
        ("semi_hard", 0.5),
        # batch_hard, per anchor: a0: 1-4+2 -> 0; a1: 1-1+2=2; a2: 4-1+2=5; a3: 4-9+2 -> 0. Mean 7/4.
        ("batch_hard", 1.75),
    ],
)
def test_triplet_loss_hand_computed(mining, expected):
    loss = TripletLoss(margin=2.0, mining=mining)
    assert float(loss(Y, X)) == pytest.approx(expected, abs=1e-5)


def test_triplet_loss_zero_when_margin_is_met_and_without_triplets():
    far = np.array([[0.0], [0.1], [10.0], [10.1]], "float32")
    for mining in ("batch_all", "semi_hard", "batch_hard"):
        assert float(TripletLoss(margin=0.2, mining=mining)(Y, far)) == 0.0
        single = TripletLoss(mining=mining)(np.zeros(4, "int32"), X)  # one identity: no negatives
        distinct = TripletLoss(mining=mining)(np.arange(4), X)  # all distinct: no positives
        assert float(single) == 0.0 and float(distinct) == 0.0


def test_contrastive_loss_hand_computed():
    # Margin 2, Euclidean d. Same: (0,1) d^2=1, (2,3) d^2=4. Different: (0,2) d=2 -> 0, (0,3) -> 0,
    # (1,2) d=1 -> (2-1)^2=1, (1,3) d=3 -> 0. Mean over the 6 pairs: 6/6.
    assert float(ContrastiveLoss(margin=2.0)(Y, X)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "loss",
    [
        TripletLoss(margin=0.5, mining="semi_hard", dtype="float64"),
        TripletLoss(margin=0.5, mining="batch_all", dtype="float64"),
        TripletLoss(margin=0.5, mining="batch_hard", dtype="float64"),
        TripletLoss(margin=0.5, mining="semi_hard", squared=False, dtype="float64"),
        ContrastiveLoss(margin=1.0, dtype="float64"),
    ],
    ids=["semi_hard", "batch_all", "batch_hard", "semi_hard_euclid", "contrastive"],
)
def test_numeric_gradient(loss):
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    emb = rng.normal(size=(8, 3))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    x = tf.Variable(emb)
    with tf.GradientTape() as tape:
        value = loss(labels, x)
    analytic = tape.gradient(value, x).numpy()
    assert float(value) > 0 and np.any(analytic)
    numeric = np.zeros_like(emb)
    eps = 1e-6
    for idx in np.ndindex(*emb.shape):
        up, down = emb.copy(), emb.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (float(loss(labels, up)) - float(loss(labels, down))) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-6)


def test_losses_serialize_and_compile_into_keras_file(tmp_path):
    loss = TripletLoss(margin=0.3, mining="batch_hard", squared=False)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, TripletLoss) and (again.margin, again.mining, again.squared) == (0.3, "batch_hard", False)
    again = keras.losses.deserialize(keras.losses.serialize(ContrastiveLoss(margin=0.7)))
    assert isinstance(again, ContrastiveLoss) and again.margin == 0.7

    model = zoo.create_model("siamese", **zoo.get_spec("siamese").test_overrides)
    model.compile("adam", loss=loss)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.loss, TripletLoss) and loaded.loss.mining == "batch_hard"


@pytest.mark.parametrize(
    "kwargs, message",
    [({"mining": "hard"}, "'hard'"), ({"margin": -1}, "margin=-1"), ({"margin": "big"}, "margin='big'")],
)
def test_loss_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        TripletLoss(**kwargs)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="'hinge'"):
        embedding_task.losses.get_loss("hinge")


def _labelled(counts, size=4):
    """Unbatched (image, label) dataset: identity i has counts[i] images whose pixels encode (i, j)."""
    xs, ys = [], []
    for i, n in enumerate(counts):
        for j in range(n):
            xs.append(np.full((size, size, 1), i * 100 + j, "float32"))
            ys.append(i)
    return tf.data.Dataset.from_tensor_slices((np.stack(xs), np.array(ys, "int64"))), len(ys)


def test_pk_batches_are_identity_balanced():
    counts = [9, 8, 4, 5, 12, 6, 3, 7]
    ds, _ = _labelled(counts)
    batches = list(pk_batches(ds, p=3, k=4, seed=1).as_numpy_iterator())
    assert batches
    seen = []
    for x, y in batches:
        assert x.shape == (12, 4, 4, 1) and y.shape == (12,)
        groups = y.reshape(3, 4)
        assert np.all(groups == groups[:, :1])  # P runs of K images of one identity
        assert np.all(x[:, 0, 0, 0] // 100 == y)  # images travel with their labels
        seen += list(x[:, 0, 0, 0])
    assert len(seen) == len(set(seen))  # no image twice in one pass
    assert len(batches) == sum(n // 4 for n in counts) // 3  # every complete group of 4 is formed
    assert 6 not in np.concatenate([y for _, y in batches])  # identity 6 has 3 < K images
    again = list(pk_batches(ds, p=3, k=4, seed=1).as_numpy_iterator())
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again))


def test_pk_batches_evaluation_mode_keeps_every_example():
    ds, n = _labelled([5, 3, 7, 1])
    batches = list(pk_batches(ds, p=2, k=3, shuffle_buffer=0, drop_remainder=False).as_numpy_iterator())
    values = np.concatenate([x[:, 0, 0, 0] for x, _ in batches])
    assert sorted(values) == sorted(i * 100 + j for i, c in enumerate([5, 3, 7, 1]) for j in range(c))


def test_pk_batches_bad_input():
    ds, _ = _labelled([4, 4])
    with pytest.raises(ValueError, match="p=0"):
        pk_batches(ds, p=0, k=2)
    with pytest.raises(ValueError, match="unbatched"):
        pk_batches(ds.batch(2), p=2, k=2)
    with pytest.raises(ValueError, match="integers"):
        pk_batches(ds.map(lambda x, y: (x, tf.cast(y, "float32"))), p=2, k=2)


def test_split_identities_and_filter():
    parts = split_identities(50, fractions=(0.6, 0.2, 0.2), seed=3)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [30, 10, 10]
    assert sorted(np.concatenate(list(parts.values()))) == list(range(50))
    assert not np.array_equal(parts["test"], split_identities(50, fractions=(0.6, 0.2, 0.2), seed=4)["test"])
    ds, _ = _labelled([2] * 10)
    keep = split_identities(10, fractions=(0.6, 0.2, 0.2))["val"]
    labels = {int(y) for _, y in filter_identities(ds, keep).as_numpy_iterator()}
    assert labels == set(keep.tolist())
    with pytest.raises(ValueError, match="too few"):
        split_identities(4)
    with pytest.raises(ValueError, match="fractions"):
        split_identities(10, fractions=(0.5, 0.5, 0.5))


def _clusters(n_ids, per_id, dim=16, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    labels = np.repeat(np.arange(n_ids), per_id)
    emb = centres[labels] + noise * rng.normal(size=(len(labels), dim))
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), labels


def test_oneshot_accuracy_separable_vs_random():
    emb, labels = _clusters(30, 3)
    assert oneshot_accuracy(emb, labels, 5, episodes=100) == 1.0
    assert oneshot_accuracy(emb, labels, 20, episodes=50) == 1.0
    rand = np.random.default_rng(1).normal(size=emb.shape)
    chance = oneshot_accuracy(rand, labels, 5, episodes=400)
    assert 0.12 < chance < 0.3  # 1/5 expected
    with pytest.raises(ValueError, match="40-way"):
        oneshot_accuracy(emb, labels, 40)


def test_roc_auc_threshold_and_accuracy_hand_computed():
    # Classic example: scores 0.1 0.4 0.35 0.8 with labels 0 0 1 1 -> 3 of 4 positive/negative
    # orderings right.
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([1, 1, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.5)  # ties count one half
    d = np.array([0.1, 0.3, 0.5, 0.7, 0.8, 0.9])
    same = np.array([1, 1, 0, 1, 1, 0], bool)
    t = select_threshold(d, same)
    assert t == pytest.approx(0.85)  # accepting up to 0.8 gets 5 of 6 right; up to 0.3 only 4
    assert verification_accuracy(d, same, t) == pytest.approx(5 / 6)
    assert verification_accuracy(d, same, 0.4) == pytest.approx(4 / 6)


def test_sample_pairs_and_evaluate_embeddings():
    emb, labels = _clusters(25, 4)
    i, j, same = sample_pairs(labels, pairs=400)
    assert same.sum() == 200 and (~same).sum() == 200
    assert np.all((labels[i] == labels[j]) == same) and np.all(i[same] != j[same])
    metrics = evaluate_embeddings(emb, labels, episodes=50)
    assert set(metrics) == {"oneshot_5way", "oneshot_20way", "verification_auc", "verification_accuracy", "threshold"}
    assert metrics["verification_auc"] == 1.0 and metrics["verification_accuracy"] == 1.0
    rand = evaluate_embeddings(np.random.default_rng(0).normal(size=emb.shape), labels, episodes=50)
    assert 0.35 < rand["verification_auc"] < 0.65


def _toy_embedder():
    """Embeds a 2x2x1 image as its L2-normalised pixels: distances are known in closed form."""
    inputs = keras.Input((2, 2, 1))
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.UnitNormalization()(x))


def test_verify_and_identify():
    model = _toy_embedder()
    a = np.array([1, 0, 0, 0], "float32").reshape(2, 2, 1)
    b = np.array([0, 1, 0, 0], "float32").reshape(2, 2, 1)
    a2 = np.array([1, 0.1, 0, 0], "float32").reshape(2, 2, 1)
    same, d = verify(model, a, a2, threshold=0.5)
    assert same and d == pytest.approx(np.sum((np.array([1, 0.1]) / np.hypot(1, 0.1) - [1, 0]) ** 2), rel=1e-4)
    same, d = verify(model, a, b, threshold=0.5)
    assert not same and d == pytest.approx(2.0, rel=1e-5)
    flags, ds = verify(model, np.stack([a, a]), np.stack([a2, b]), threshold=0.5)
    assert flags.tolist() == [True, False] and ds.shape == (2,)

    gallery = {"alice": a, "bob": b}
    assert identify(model, a2, gallery, threshold=0.5)[0] == "alice"
    c = np.array([0, 0, 1, 0], "float32").reshape(2, 2, 1)
    name, dist = identify(model, c, gallery, threshold=0.5)
    assert name == UNKNOWN and dist == pytest.approx(2.0, rel=1e-5)
    enrolled = Gallery.enroll(model, np.stack([a, b, c]), ["alice", "bob", "carol"])
    assert identify(model, c, enrolled, threshold=0.5)[0] == "carol"
    with pytest.raises(ValueError, match="2 names"):
        Gallery.enroll(model, np.stack([a, b, c]), ["alice", "bob"])


def test_siamese_pair_view_shares_the_embedding(tmp_path):
    kw = zoo.get_spec("siamese").test_overrides
    emb_model = zoo.siamese(**kw)
    path = tmp_path / "emb.weights.h5"
    emb_model.save_weights(path)
    pair = zoo.siamese(view="pair", weights=str(path), **kw)
    assert [i.shape[1:] for i in pair.inputs] == [(32, 32, 3), (32, 32, 3)]
    x = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype("float32")
    y = x[::-1].copy()
    e_x, e_y = np.asarray(emb_model(x)), np.asarray(emb_model(y))
    np.testing.assert_allclose(np.asarray(pair([x, y]))[:, 0], np.sum((e_x - e_y) ** 2, 1), rtol=1e-4, atol=1e-5)
    pair.save(tmp_path / "pair.keras")
    loaded = keras.saving.load_model(tmp_path / "pair.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(loaded([x, y])), np.asarray(pair([x, y])), atol=1e-5)


def test_siamese_options_and_errors():
    kw = zoo.get_spec("siamese").test_overrides
    assert zoo.siamese(**kw, include_top=False).output_shape == (None, 2, 2, 32)
    assert zoo.siamese(**kw, include_top=False, pooling="max").output_shape == (None, 32)
    assert zoo.siamese(**kw, pooling="avg").get_layer("avg_pool") is not None
    assert zoo.siamese(**kw).get_layer("flatten").output.shape == (None, 2 * 2 * 32)
    assert zoo.siamese(**{**kw, "embedding_dim": 5}, dropout=0.2).output_shape == (None, 5)
    assert zoo.siamese(**kw, classes=7).output_shape == (None, 8)  # classes do not shape an embedding
    for kwargs, message in [
        ({"view": "triple"}, "'triple'"),
        ({"embedding_dim": 0}, "embedding_dim=0"),
        ({"classifier_activation": "softmax"}, "'softmax'"),
        ({"backbone_weights": "imagenet"}, "backbone_weights='imagenet'"),
        ({"input_shape": (8, 8, 3)}, "minimum is 16x16"),
        ({"pooling": "sum"}, "pooling='sum'"),
        ({"dropout": 1.0}, "dropout=1.0"),
    ]:
        with pytest.raises(ValueError) as err:
            zoo.siamese(**{**kw, **kwargs})
        assert message in str(err.value), kwargs


def test_task_hooks_loss_and_serving_outputs():
    recipe = zoo.get_spec("siamese").recipe
    loss = embedding_task.make_loss(None, recipe, None)
    assert isinstance(loss, TripletLoss) and loss.mining == "semi_hard" and loss.margin == 0.2
    contrastive = embedding_task.make_loss(None, Recipe(extra={"loss": "contrastive", "margin": 0.5}), None)
    assert isinstance(contrastive, ContrastiveLoss) and contrastive.margin == 0.5
    out = embedding_task.serving_outputs(None, np.array([[3.0, 4.0], [0.0, 2.0]], "float32"))
    np.testing.assert_allclose(np.asarray(out["embedding"]), [[0.6, 0.8], [0.0, 1.0]], atol=1e-6)
    from zoo.tasks import get_task

    assert get_task("embedding").evaluate is embedding_task.evaluate


def _array_source(n_ids=15, per_id=4, noise=8.0):
    """Identity i: one random 8x8 pattern, `per_id` noisy copies of it."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 255, (n_ids, 8, 8, 1))
    labels = np.repeat(np.arange(n_ids), per_id)
    x = np.clip(base[labels] + noise * rng.normal(size=(len(labels), 8, 8, 1)), 0, 255).astype("uint8")
    return x, labels


def test_task_datasets_split_identities_not_images():
    import pipelines

    source = _array_source()
    spec = pipelines.inspect(source, task="embedding")
    recipe = Recipe(batch_size=8, extra={"images_per_identity": 2, "identity_split": [0.6, 0.2, 0.2]})
    seen = {}
    for split in ("train", "val", "test"):
        labels = [y for _, ys in embedding_task.make_dataset(source, split, recipe, spec, False) for y in ys.numpy()]
        seen[split] = labels
        assert all(labels.count(i) == 4 for i in set(labels))  # every image of the identity, once
    ids = [set(v) for v in seen.values()]
    assert [len(i) for i in ids] == [9, 3, 3] and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    train = list(embedding_task.make_dataset(source, "train", recipe, spec, True, seed=0))
    assert len(train) == -(-spec.splits["train"] // 8)  # an epoch: ceil(train examples / batch)
    for _, y in train:
        y = y.numpy().reshape(4, 2)
        assert np.all(y == y[:, :1]) and set(y[:, 0]) <= ids[0]


def test_task_evaluate_reports_the_issue_metrics():
    import pipelines

    source = _array_source(n_ids=25)
    spec = pipelines.inspect(source, task="embedding")
    recipe = Recipe(batch_size=8, extra={"images_per_identity": 2, "identity_split": [0.1, 0.1, 0.8]})
    test = embedding_task.make_dataset(source, "test", recipe, spec, False)
    inputs = keras.Input((8, 8, 1))  # embedding = the normalised pixels: copies of a pattern are close
    model = keras.Model(inputs, keras.layers.UnitNormalization()(keras.layers.Flatten()(inputs)))
    metrics = embedding_task.evaluate(model, test, spec, recipe)
    assert set(metrics) == {"oneshot_5way", "oneshot_20way", "verification_auc", "verification_accuracy", "threshold"}
    assert metrics["oneshot_5way"] == 1.0 and metrics["oneshot_20way"] == 1.0 and metrics["verification_auc"] == 1.0
    noisy = _array_source(n_ids=25, noise=400.0)  # noise swamps the pattern: near chance
    test = embedding_task.make_dataset(noisy, "test", recipe, pipelines.inspect(noisy, task="embedding"), False)
    metrics = embedding_task.evaluate(model, test, spec, recipe)
    assert metrics["oneshot_5way"] < 0.5 and metrics["verification_auc"] < 0.75


def test_siamese_on_a_zoo_backbone_by_name():
    model = zoo.siamese(backbone="resnet20", input_shape=(32, 32, 3), pooling="avg", embedding_dim=8)
    out = np.asarray(model(np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")))
    assert out.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="resnet17"):
        zoo.siamese(backbone="resnet17")
