import keras
import numpy as np
import pytest

from callbacks import schedules

STEPS = np.arange(0, 200)
SPE = 10  # steps per epoch
EPOCH = STEPS // SPE


def values(schedule):
    return np.array([float(schedule(s)) for s in STEPS])


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (schedules.InverseTimeDecay(0.2, decay_rate=0.5, steps_per_epoch=SPE), 0.2 / (1 + 0.5 * EPOCH)),
        (schedules.ExponentialDecay(0.1, steps_per_epoch=SPE), 0.1 * 0.95 ** EPOCH),
        (schedules.InverseSqrtDecay(0.3, steps_per_epoch=SPE), 0.3 / np.sqrt(EPOCH + 1)),
        (schedules.StepDecay(0.1, factor=0.5, every=4, steps_per_epoch=SPE), 0.1 * 0.5 ** (EPOCH // 4)),
        (schedules.PiecewiseConstantDecay([3, 7], [1.0, 0.1, 0.01], steps_per_epoch=SPE),
         np.select([EPOCH < 3, EPOCH < 7], [1.0, 0.1], 0.01)),
        (schedules.PiecewiseConstantDecay([50, 120], [0.1, 0.01, 0.001], unit="step"),
         np.select([STEPS < 50, STEPS < 120], [0.1, 0.01], 0.001)),
        (schedules.WarmupCosineDecay(0.4, decay_steps=150, warmup_steps=50, alpha=0.1),
         np.where(STEPS < 50, 0.4 * STEPS / 50,
                  0.4 * (0.9 * 0.5 * (1 + np.cos(np.pi * np.clip((STEPS - 50) / 150, 0, 1))) + 0.1))),
    ],
    ids=["inverse_time", "exponential", "inverse_sqrt", "step", "piecewise_epochs", "piecewise_steps", "cosine"],
)
def test_schedule_matches_closed_form(schedule, expected):
    np.testing.assert_allclose(values(schedule), expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", sorted(schedules.SCHEDULES))
def test_config_round_trip_and_serialization(name):
    schedule = schedules.get(name, lr=0.1, steps_per_epoch=SPE, epochs=20,
                             **({"boundaries_epochs": [5], "values": [0.1, 0.01]} if name == "piecewise" else {}))
    again = type(schedule).from_config(schedule.get_config())
    np.testing.assert_allclose(values(again), values(schedule))
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(restored) is type(schedule)
    opt = keras.optimizers.deserialize(keras.optimizers.serialize(keras.optimizers.SGD(schedule)))
    assert type(opt._learning_rate) is type(schedule)


# Optimizer `learning_rate` entries as the hand-written schedules (before they became Keras') serialized them.
SAVED_BEFORE = [
    ({"class_name": "InverseTimeDecay", "config": {"steps_per_epoch": 10, "initial_learning_rate": 0.2, "decay_rate": 0.5}},
     0.2 / (1 + 0.5 * EPOCH)),
    ({"class_name": "ExponentialDecay", "config": {"steps_per_epoch": 10, "initial_learning_rate": 0.1, "base": 0.9}},
     0.1 * 0.9 ** EPOCH),
    ({"class_name": "InverseSqrtDecay", "config": {"steps_per_epoch": 10, "k": 0.3}}, 0.3 / np.sqrt(EPOCH + 1)),
    ({"class_name": "StepDecay",
      "config": {"steps_per_epoch": 10, "initial_learning_rate": 0.1, "factor": 0.5, "every": 4}},
     0.1 * 0.5 ** (EPOCH // 4)),
    ({"class_name": "PiecewiseConstantDecay",
      "config": {"steps_per_epoch": 10, "boundaries": [3, 7], "values": [1.0, 0.1, 0.01], "unit": "epoch"}},
     np.select([EPOCH < 3, EPOCH < 7], [1.0, 0.1], 0.01)),
    ({"class_name": "PiecewiseConstantDecay",
      "config": {"steps_per_epoch": 1, "boundaries": [50, 120], "values": [0.1, 0.01, 0.001], "unit": "step"}},
     np.select([STEPS < 50, STEPS < 120], [0.1, 0.01], 0.001)),
    ({"class_name": "WarmupCosineDecay",
      "config": {"initial_learning_rate": 0.4, "decay_steps": 150, "warmup_steps": 50, "alpha": 0.1}},
     np.where(STEPS < 50, 0.4 * STEPS / 50,
              0.4 * (0.9 * 0.5 * (1 + np.cos(np.pi * np.clip((STEPS - 50) / 150, 0, 1))) + 0.1))),
]


@pytest.mark.parametrize("saved, expected", SAVED_BEFORE, ids=[s["class_name"] for s, _ in SAVED_BEFORE])
def test_schedules_saved_before_still_load(saved, expected, tmp_path):
    entry = {"module": "callbacks.schedules", **saved, "registered_name": f"zoo>{saved['class_name']}"}
    schedule = keras.optimizers.schedules.deserialize(entry)
    assert type(schedule).__name__ == saved["class_name"] and schedule.get_config() == saved["config"]
    np.testing.assert_allclose(values(schedule), expected, rtol=1e-5, atol=1e-8)
    # get_config is unchanged, so a .keras file holds the same entry as before; it loads to the same rates.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(values(loaded.optimizer._learning_rate), expected, rtol=1e-5, atol=1e-8)


def test_epoch_schedules_are_keras_own():
    S = keras.optimizers.schedules
    assert isinstance(schedules.InverseTimeDecay(0.1, steps_per_epoch=3), S.InverseTimeDecay)
    assert isinstance(schedules.ExponentialDecay(0.1, steps_per_epoch=3), S.ExponentialDecay)
    step = schedules.StepDecay(0.1, factor=0.5, every=4, steps_per_epoch=3)
    assert isinstance(step, S.ExponentialDecay) and (step.decay_steps, step.staircase) == (12, True)


def test_get_from_recipe_arguments():
    assert schedules.get(None, lr=0.01, steps_per_epoch=5) == 0.01
    assert schedules.get("plateau", lr=0.01, steps_per_epoch=5) == 0.01
    steps = schedules.get("piecewise", lr=0.1, steps_per_epoch=5, boundaries_steps=[10], values=[0.1, 0.01])
    assert steps.unit == "step" and float(steps(9)) == pytest.approx(0.1) and float(steps(10)) == pytest.approx(0.01)
    frac = schedules.get("piecewise", lr=0.1, steps_per_epoch=5, epochs=8, boundaries_fraction=[0.5, 0.75],
                         values=[0.1, 0.01, 0.001])
    assert frac.boundaries == [20, 30]
    capped = schedules.get("piecewise", lr=0.1, steps_per_epoch=5, epochs=8, total_steps=20,
                           boundaries_fraction=[0.5], values=[0.1, 0.01])
    assert capped.boundaries == [10]
    assert schedules.fraction_boundaries([0.5, 0.75], 2) == [1, 2]  # at least one step apart
    with pytest.raises(ValueError, match=r"boundaries_fraction.*\[0.5, 1.5\]"):
        schedules.fraction_boundaries([0.5, 1.5], 100)
    cosine = schedules.get("cosine", lr=0.1, steps_per_epoch=10, epochs=5, warmup_epochs=1)
    assert (cosine.warmup_steps, cosine.decay_steps) == (10, 40)
    assert float(cosine(10)) == pytest.approx(0.1) and float(cosine(50)) == pytest.approx(0.0, abs=1e-7)
    assert schedules.get("inverse_sqrt", lr=0.5, steps_per_epoch=1).k == 0.5


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: schedules.get("cosin", lr=0.1, steps_per_epoch=1), "Did you mean 'cosine'"),
        (lambda: schedules.get("step", lr=0.1, steps_per_epoch=1, gamma=0.5), "gamma"),
        (lambda: schedules.PiecewiseConstantDecay([5, 3], [1, 2, 3]), "increasing"),
        (lambda: schedules.PiecewiseConstantDecay([5], [1]), "one more entry"),
        (lambda: schedules.ExponentialDecay(-1.0), "initial_learning_rate=-1.0"),
        (lambda: schedules.PiecewiseConstantDecay([5], [1, 2], unit="iteration"), "unit='iteration'"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
