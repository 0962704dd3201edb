"""zoo tune: the space parser, log-uniform sampling, and real searches (each trial a `zoo train` process) on tiny
data: best.json and plots, coarse to fine, SIGKILL + --resume, two workers on one journal file, and two workers
sharing a study on a real PostgreSQL server started here."""

import glob
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import optuna
import pytest

from benchmarks import train_matrix as matrix
from zoo import search
from zoo.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
# Cheap trials: softmax regression, 2 epochs, a fixed batch size, only the --space given here.
FIXED = ["--epochs", "2", "--batch-size", "16", "--only-space", "--space", "lr=log(1e-2,3e-1)"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    x, y = matrix.tiny_images(128, (8, 8, 1), 3, 0)
    path = tmp_path_factory.mktemp("tune-data") / "tiny.npz"
    np.savez(path, x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    return str(path)


def tune_cmd(data, out, *args):
    return [sys.executable, "-m", "zoo.cli", "tune", "softmax_regression", "--data", data, "--out", str(out),
            *FIXED, *args]


def run(cmd, timeout=900):
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=timeout)


def load(out, name="zoo-tune", storage=None):
    if storage is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(os.path.join(out, search.JOURNAL)))
    return optuna.load_study(study_name=name, storage=storage)


def finished(study):
    return [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]


# ---- the space ------------------------------------------------------------------------------------------------
def test_space_parser_forms():
    assert search.parse_space("lr=log(1e-4,1)") == ("lr", search.Dist("log", 1e-4, 1.0))
    assert search.parse_space("momentum=1-log(0.1,0.001)") == ("momentum", search.Dist("1-log", 0.001, 0.1))
    assert search.parse_space("batch_size=choice(32,64,128)") == ("batch_size", search.Dist("choice", choices=(32, 64, 128)))
    assert search.parse_space("label_smoothing = uniform(0.2, 0)") == ("label_smoothing", search.Dist("uniform", 0, 0.2))
    assert search.parse_space("epochs=int(2,8)") == ("epochs", search.Dist("int", 2, 8))
    assert search.parse_space("augment=choice(flip+crop,none)")[1].choices == ("flip+crop", "none")
    for spec in ("lr=log(1e-4,1)", "momentum=1-log(0.1,0.001)", "batch_size=choice(32,64,128)", "epochs=int(2,8)"):
        name, dist = search.parse_space(spec)
        assert search.parse_space(f"{name}={dist}") == (name, dist)  # str() round-trips (stored in the study)


@pytest.mark.parametrize("spec, says", [
    ("lr=log(0,1)", "bounds > 0"),
    ("lr=log(1e-3,1e-3)", "empty range"),
    ("lr=uniform(1)", "two bounds"),
    ("lrr=log(1e-4,1)", "Did you mean 'lr'"),
    ("momentum=1-log(0.1,2)", "< 1"),
    ("batch_size=choice()", "empty choice"),
    ("lr=logg(1e-4,1)", "NAME=KIND(ARGS)"),
    ("epochs=int(1.5,3)", "integer bounds"),
    ("lr=log(a,1)", "'a' is not a number"),
])
def test_space_parser_rejects_in_one_line(spec, says, capsys, tiny):
    with pytest.raises(ValueError) as info:
        search.parse_space(spec)
    assert says in str(info.value) and "\n" not in str(info.value) and spec in str(info.value)
    assert main(["tune", "softmax_regression", "--data", tiny, "--space", spec, "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoo: error:") and says in err[0]


def test_bad_storage_and_fixed_vs_searched_are_one_line_errors(capsys, tiny, tmp_path):
    for storage, says in (("redis://localhost/0", "expected postgresql://"),
                          ("postgresql://nobody@127.0.0.1:1/none", "cannot open it")):
        code = main(["tune", "softmax_regression", "--data", tiny, "--out", str(tmp_path / "s"), "--storage", storage])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and says in err[0], err
    code = main(["tune", "softmax_regression", "--data", tiny, "--lr", "0.1", "--space", "lr=log(1e-3,1)"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'lr' is both fixed" in err[0]


def test_default_space_follows_the_recipe():
    from zoo import registry

    space = search.default_space("resnet20")
    recipe = registry.get_spec("resnet20").recipe
    assert space["lr"] == search.Dist("log", recipe.lr / 10, min(recipe.lr * 10, 1.0))
    assert recipe.batch_size in space["batch_size"].choices
    assert space["momentum"].kind == "1-log"  # SGD with momentum: 1 - beta on a log scale
    assert "momentum" not in search.default_space("softmax_regression")  # adam


def test_log_uniform_sampling_covers_each_decade_equally():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = {"lr": search.Dist("log", 1e-4, 1.0), "momentum": search.Dist("1-log", 0.001, 0.1),
             "label_smoothing": search.Dist("uniform", 1e-4, 1.0)}
    draws = [search.suggest(study.ask(), space) for _ in range(2000)]
    lr = np.array([d["lr"] for d in draws])
    low, high = np.sum((lr >= 1e-4) & (lr < 1e-3)), np.sum((lr >= 1e-1) & (lr <= 1))
    assert 400 < low < 600 and 400 < high < 600 and 0.8 < low / high < 1.25
    beta = 1 - np.array([d["momentum"] for d in draws])  # momentum = 1 - beta, beta log-uniform in [0.001, 0.1]
    assert beta.min() >= 0.001 - 1e-12 and beta.max() <= 0.1 + 1e-12
    assert 0.8 < np.sum(beta < 0.01) / np.sum(beta >= 0.01) < 1.25
    uniform = np.array([d["label_smoothing"] for d in draws])  # the contrast: uniform puts ~0.1% in the first decade
    assert np.sum(uniform < 1e-3) < 10 and np.sum(uniform >= 0.1) > 1700


def test_grid_values_and_refine_narrow_ranges():
    assert search.grid_values(search.Dist("log", 1e-4, 1.0), 5) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1])
    assert search.grid_values(search.Dist("int", 1, 4), 3) == [1, 2, 4]
    space = {"lr": search.Dist("log", 1e-4, 1.0), "batch_size": search.Dist("choice", choices=(16, 32, 64))}
    fine = {}
    for name, score in (("lr", lambda v: -abs(np.log10(v) + 2)), ("batch_size", lambda v: float(v == 32))):
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
        for _ in range(40):
            trial = study.ask()
            study.tell(trial, score(search.suggest(trial, {name: space[name]})[name]))  # best: lr 1e-2, 32
        fine.update(search.narrow({name: space[name]}, study.get_trials(), maximize=True))
    assert 1e-4 < fine["lr"].low < 1e-2 < fine["lr"].high < 1.0
    assert np.log10(fine["lr"].high / fine["lr"].low) < 2.5  # from 4 decades to under 2.5
    assert fine["batch_size"].choices == (32,)


# ---- real searches ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_search_writes_best_json_plots_and_trains_from_it(tiny, tmp_path):
    out = tmp_path / "tune"
    proc = run(tune_cmd(tiny, out, "--trials", "2", "--refine", "--sampler", "random", "--search-seed", "0"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("zoo tune: trial")]
    assert len(lines) == 4 and all("finished" in ln and "best" in ln for ln in lines), proc.stdout
    best = json.loads((out / "best.json").read_text())
    assert best["metric"] == "accuracy" and 0 <= best["dev"] <= 1 and best["trial"] in ("0", "1", "refine-0", "refine-1")
    assert best["command"].startswith("zoo train softmax_regression --data ") and "--set lr=" in best["command"]
    assert {"accuracy", "loss"} <= set(best["test"]) and best["trials"]["complete"] == 4
    for prefix in ("", "refine-"):
        for name in ("history", "parallel_coordinates", "importances", "intermediate_values"):
            assert (out / f"{prefix}{name}.png").stat().st_size > 1000, (prefix, name)
    refined = search.parse_space(f"lr={best['space']['refine-']['lr']}")[1]
    assert 1e-2 <= refined.low < refined.high <= 3e-1 and (refined.low, refined.high) != (1e-2, 3e-1)
    runs = sorted(glob.glob(str(out / "trials" / "*" / "metrics.json")))
    assert len(runs) == 4
    for path in runs:  # trials select on dev: the test split is evaluated once, for the best trial only
        assert set(json.loads(open(path).read())) == {"train", "val"}
    again = run([sys.executable, "-m", "zoo.cli", "train", "softmax_regression", "--from-tune", str(out),
                 "--out", str(tmp_path / "best-run")])
    assert again.returncode == 0, again.stderr
    config = json.loads((tmp_path / "best-run" / "config.json").read_text())
    assert config["recipe"]["lr"] == pytest.approx(best["values"]["lr"])
    assert config["recipe"]["epochs"] == 2 and config["recipe"]["batch_size"] == 16


def _wait_for(predicate, timeout=600, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if predicate():
                return
        except (KeyError, ValueError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_sigkill_then_resume_finishes_the_requested_trials(tiny, tmp_path):
    out = tmp_path / "tune"
    cmd = tune_cmd(tiny, out, "--trials", "3", "--sampler", "random", "--prune", "none")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT)
    try:
        def second_trial_training():
            running = [t for t in load(out).get_trials() if t.state.name == "RUNNING" and "values" in t.user_attrs]
            return finished(load(out)) and running
        _wait_for(second_trial_training, what="a finished trial and a running one")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = [t.number for t in load(out).get_trials() if t.state.name == "RUNNING"]
    assert len(killed) == 1
    resumed = run(cmd + ["--resume", "--search-seed", "1"])
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert f"trial {killed[0]} lost its worker" in resumed.stdout
    study = load(out)
    assert len(finished(study)) == 3 and not [t for t in study.get_trials() if t.state.name == "RUNNING"]
    lost = study.trials[killed[0]]
    assert lost.state.name == "FAIL" and lost.user_attrs["error"] == "its worker process died"
    retry = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == killed[0]]
    assert len(retry) == 1 and retry[0].params == lost.params and retry[0].state.name == "COMPLETE"
    assert (out / "best.json").is_file()
    nothing = run(tune_cmd(tiny, tmp_path / "elsewhere", "--resume"))
    assert nothing.returncode == 2 and "Nothing to resume" in nothing.stderr


def _two_workers(tiny, outs, trials, extra=()):
    procs = [subprocess.Popen(tune_cmd(tiny, out, "--trials", str(trials), "--sampler", "random", "--prune", "none",
                                       "--search-seed", str(i), *extra),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
             for i, out in enumerate(outs)]
    results = [p.communicate(timeout=900) for p in procs]
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr + stdout
    return [stdout for stdout, _ in results]


def _check_shared(study, outs, trials, stdouts):
    done = finished(study)
    assert len(done) == trials
    run_dirs = [t.user_attrs["run_dir"] for t in done]
    assert len(set(run_dirs)) == trials  # no trial run twice
    started = [p for out in set(outs) for p in glob.glob(os.path.join(out, "trials", "*", "config.json"))]
    assert len(started) == trials  # no extra trial was started either
    assert all("zoo tune: trial" in s for s in stdouts)  # both workers ran trials
    assert len({t.user_attrs["worker"]["pid"] for t in done}) == 2  # both processes finished trials


@pytest.mark.slow
def test_two_workers_share_one_journal_file(tiny, tmp_path):
    out = str(tmp_path / "tune")
    stdouts = _two_workers(tiny, [out, out], 4)
    _check_shared(load(out), [out, out], 4, stdouts)
    best = json.loads(open(os.path.join(out, "best.json")).read())
    assert "accuracy" in best["test"]


def _pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    hits = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return hits[-1] if hits else None


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server on a loopback port (as the postgres user when run as root)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin); "
                    ".ci/run installs the Debian postgresql package")
    root = tempfile.mkdtemp(prefix="zoo-pg-")
    as_user = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(root, "data")
    subprocess.run([*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"], check=True,
                   capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_study_on_postgresql(tiny, tmp_path, postgres):
    outs = [str(tmp_path / "machine-a"), str(tmp_path / "machine-b")]  # caviar: each machine its own --out
    stdouts = _two_workers(tiny, outs, 4, extra=("--storage", postgres, "--study", "tiny"))
    study = load(None, "tiny", storage=postgres)
    _check_shared(study, outs, 4, stdouts)
    assert len([k for k in study.user_attrs if k.startswith("test_")]) == 1  # test evaluated once


def _fresh_database(url, name):
    import psycopg2

    con = psycopg2.connect(url.replace("postgresql+psycopg2", "postgresql"))
    con.autocommit = True
    con.cursor().execute(f"CREATE DATABASE {name}")
    con.close()
    return url.rsplit("/", 1)[0] + "/" + name


def test_workers_started_together_all_open_an_empty_database(postgres):
    """Every worker creates Optuna's tables on first use; the losers of that race retry instead of failing.

    Without the retry, 6 threads released together lost the race here 6 times in 6 (UniqueViolation on pg_type).
    """
    import threading

    url = _fresh_database(postgres, "race")
    start, errors = threading.Barrier(6), []

    def worker():
        start.wait()
        try:
            search.open_storage("unused", url)
        except ValueError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
