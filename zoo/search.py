"""Hyperparameter search on Optuna: search spaces, one `zoo train` process per trial, best.json and plots.

The zoo's own code is the mapping recipe <-> trial and the run directories; sampling, pruning and the
shared study (journal file or PostgreSQL/MySQL) are Optuna's. Each trial is `python -m zoo.cli train ...
--out OUT/trials/NNNN` in its own process (TensorFlow memory grows across models in one process, and a
crashed trial must not end the search); the parent reads the trial's history.csv as it grows and reports
the dev metric of each epoch to the pruner, so the training loop knows nothing of the search.

    >>> name, dist = parse_space("momentum=1-log(0.1,0.001)")   # momentum = 1 - beta, beta log-uniform
    >>> space = default_space("lenet5")                           # the recipe's own space
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import math
import os
import random
import re
import shlex
import socket
import subprocess
import sys
import time
import warnings

from zoo.recipes import Recipe

SAMPLERS = ("random", "tpe", "grid", "gp")
PRUNERS = ("median", "hyperband", "none")
KINDS = ("log", "1-log", "uniform", "int", "choice")
SEARCHABLE = tuple(sorted(f.name for f in dataclasses.fields(Recipe) if f.name not in ("extra", "published")))
BEST, JOURNAL = "best.json", "study.journal"
_SPEC = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(1\s*-\s*log|log|uniform|int|choice)\s*\((.*)\)\s*$")


@dataclasses.dataclass(frozen=True)
class Dist:
    """One searched parameter: `kind` in KINDS, a range `[low, high]` or `choices`."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple = ()

    def __str__(self) -> str:
        if self.kind == "choice":
            return f"choice({','.join(map(str, self.choices))})"
        if self.kind == "1-log":
            return f"1-log({self.high:g},{self.low:g})"
        return f"{self.kind}({self.low:g},{self.high:g})"


def _number(text, spec):
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--space {spec!r}: {text.strip()!r} is not a number.") from None


def _choice(text):
    text = text.strip()
    try:
        import ast

        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_space(spec: str) -> tuple[str, Dist]:
    """`"lr=log(1e-4,1)"` -> `("lr", Dist("log", 1e-4, 1.0))`.

    Forms: `log(a,b)` (log-uniform), `1-log(a,b)` (the parameter is 1 - x, x log-uniform in [a, b], e.g.
    momentum), `uniform(a,b)`, `int(a,b)`, `choice(v1,v2,...)`. Bounds may come in either order.

    Raises:
        ValueError: one line naming the spec, the bad part and what is allowed.
    """
    m = _SPEC.match(spec or "")
    if not m:
        raise ValueError(f"--space {spec!r}: expected NAME=KIND(ARGS) with KIND one of {', '.join(KINDS)}, "
                         "e.g. lr=log(1e-4,1), momentum=1-log(0.1,0.001), batch_size=choice(32,64,128).")
    name, kind, args = m.group(1), re.sub(r"\s", "", m.group(2)), [a for a in m.group(3).split(",") if a.strip()]
    if name not in SEARCHABLE:
        close = difflib.get_close_matches(name, SEARCHABLE, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"--space {spec!r}: unknown parameter {name!r}.{hint} Allowed: {', '.join(SEARCHABLE)}.")
    if kind == "choice":
        if not args:
            raise ValueError(f"--space {spec!r}: empty choice; give at least one value.")
        return name, Dist("choice", choices=tuple(_choice(a) for a in args))
    if len(args) != 2:
        raise ValueError(f"--space {spec!r}: {kind}() takes two bounds. Received: {len(args)}.")
    low, high = sorted(_number(a, spec) for a in args)
    if not (math.isfinite(low) and math.isfinite(high)) or low == high:
        raise ValueError(f"--space {spec!r}: empty range [{low:g}, {high:g}]; the bounds must differ.")
    if kind in ("log", "1-log") and low <= 0:
        raise ValueError(f"--space {spec!r}: a log range needs bounds > 0. Received: {low:g}.")
    if kind == "1-log" and high >= 1:
        raise ValueError(f"--space {spec!r}: 1-log(a,b) samples 1 - value in (0, 1); bounds must be < 1.")
    if kind == "int":
        if low != int(low) or high != int(high):
            raise ValueError(f"--space {spec!r}: int() takes integer bounds.")
        low, high = int(low), int(high)
    return name, Dist(kind, low, high)


def parse_spaces(specs) -> dict:
    space = {}
    for spec in specs or ():
        name, dist = parse_space(spec)
        space[name] = dist
    return space


def _spec(model: str):
    import zoo.models  # noqa: F401  (registers the models)
    from zoo import registry

    return registry.get_spec(model)


def default_space(model: str) -> dict:
    """The recipe's own space: lr log-uniform over 100x around the recipe's, weight decay, batch size,
    momentum as 1 - beta for momentum/rmsprop, and augmentation on/off when the recipe augments."""
    r = _spec(model).recipe or Recipe()
    space = {"lr": Dist("log", r.lr / 10, min(r.lr * 10, 1.0))}
    wd = r.weight_decay
    space["weight_decay"] = Dist("log", wd / 10, wd * 10) if wd > 0 else Dist("log", 1e-6, 1e-3)
    b = r.batch_size
    space["batch_size"] = Dist("choice", choices=tuple(sorted({max(8, b // 2), b, b * 2})))
    if r.optimizer in ("momentum", "rmsprop"):
        space["momentum"] = Dist("1-log", 0.001, 0.1)
    if r.augment:
        space["augment"] = Dist("choice", choices=("+".join(r.augment), "none"))
    return space


# ---- trial <-> recipe ---------------------------------------------------------------------------------------
def param_name(name, dist) -> str:
    """The Optuna parameter: `1-momentum` for a 1-log momentum (what is sampled), else the name."""
    return f"1-{name}" if dist.kind == "1-log" else name


def suggest(trial, space: dict) -> dict:
    """Samples every parameter of `space` on `trial`; returns the recipe values (1-log already turned to 1 - x)."""
    values = {}
    for name, d in space.items():
        key = param_name(name, d)
        if d.kind == "choice":
            values[name] = trial.suggest_categorical(key, list(d.choices))
        elif d.kind == "int":
            values[name] = trial.suggest_int(key, d.low, d.high)
        else:
            x = trial.suggest_float(key, d.low, d.high, log=d.kind != "uniform")
            values[name] = 1.0 - x if d.kind == "1-log" else x
    return values


def grid_values(dist: Dist, points: int = 3) -> list:
    """`points` values spanning a range (geometric for log ranges); the choices of a choice."""
    import numpy as np

    if dist.kind == "choice":
        return list(dist.choices)
    if dist.kind == "int":
        return sorted({int(round(v)) for v in np.linspace(dist.low, dist.high, points)})
    fn = np.geomspace if dist.kind in ("log", "1-log") else np.linspace
    return [float(v) for v in fn(dist.low, dist.high, points)]


def set_args(values: dict) -> list:
    """Recipe values as `zoo train` arguments: `["--set", "lr=0.01", ...]`."""
    out = []
    for name, v in values.items():
        if name == "augment" and isinstance(v, str):
            v = "()" if v in ("none", "") else v.replace("+", ",")
        out += ["--set", f"{name}={v!r}" if isinstance(v, float) else f"{name}={v}"]
    return out


# ---- storage and study --------------------------------------------------------------------------------------
def open_storage(out: str, url: str | None = None):
    """A journal file in `out` (nothing to start), or the RDB at `url` with heartbeats and retries.

    Raises:
        ValueError: a bad or unreachable storage URL, in one line.
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url is None:
        os.makedirs(out, exist_ok=True)
        return JournalStorage(JournalFileBackend(os.path.join(out, JOURNAL)))
    if not re.match(r"^(postgresql|mysql|sqlite)(\+\w+)?://", url):
        raise ValueError(f"--storage {url!r}: expected postgresql://USER@HOST/DB or mysql://USER@HOST/DB "
                         "(leave it out for the journal file in --out).")
    for attempt in range(_SCHEMA_TRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, heartbeat_interval=10, grace_period=40,
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
        except Exception as exc:  # noqa: BLE001  (SQLAlchemy and the drivers raise many types)
            if _lost_schema_race(exc) and attempt + 1 < _SCHEMA_TRIES:
                time.sleep(0.2 + random.random())  # another worker is creating the tables; they exist next time
                continue
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"--storage {_redact(url)!r}: cannot open it: {first}") from None


_SCHEMA_TRIES = 5


def _lost_schema_race(exc: Exception) -> bool:
    """Workers started together on an empty database all create Optuna's tables; all but one lose.

    PostgreSQL reports the loser as a unique violation on its catalog (pg_type) or a table that already exists.
    """
    text = str(exc)
    return type(exc).__name__ in ("IntegrityError", "ProgrammingError") and (
        "pg_type_typname_nsp_index" in text or "already exists" in text or "Duplicate" in text)


def _redact(url: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", url)


def make_sampler(name: str, space: dict, seed=None, grid_points: int = 3):
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "grid":
        grid = {param_name(n, d): grid_values(d, grid_points) for n, d in space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "gp":
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise ValueError("--sampler gp needs PyTorch (pip install torch); or choose random, tpe or grid.")
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"--sampler {name!r}: allowed: {', '.join(SAMPLERS)}.")


def make_pruner(name: str, epochs: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(int(epochs), 1), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"--prune {name!r}: allowed: {', '.join(PRUNERS)}.")


# ---- one search -------------------------------------------------------------------------------------------
class TrialFailed(Exception):
    """A trial's `zoo train` exited non-zero or wrote no dev metric (the trial is FAIL; the search goes on)."""


class _Surplus(Exception):
    """Another worker's trials already make up the requested count."""


@dataclasses.dataclass
class Search:
    """One `zoo tune`: what to train, the space, and how to search it.

    Attributes:
        model, data, out: The registered model, the data source and the search folder.
        space: `{name: Dist}` (`default_space` and/or `parse_spaces`).
        trials: Finished (complete + pruned) trials the study should hold, whichever process ran them.
        fixed_argv: `zoo train` options every trial gets (`["--epochs", "2", ...]`).
        fixed: The same as recipe overrides, plus `model_kwargs` and `seed` (for best.json / --from-tune).
    """

    model: str
    data: str
    out: str
    space: dict
    trials: int = 20
    metric: str | None = None
    sampler: str = "tpe"
    prune: str = "median"
    storage: str | None = None
    study: str | None = None
    resume: bool = False
    refine: bool = False
    search_seed: int | None = None
    grid_points: int = 3
    budget_cpu_s: float | None = None
    fixed_argv: list = dataclasses.field(default_factory=list)
    fixed: dict = dataclasses.field(default_factory=dict)
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    seed: int | None = None

    def argv(self, run_dir, values, *, zoo=False) -> list:
        head = ["zoo"] if zoo else [sys.executable, "-m", "zoo.cli"]
        return [*head, "train", self.model, "--data", self.data, *self.fixed_argv, *set_args(values),
                "--out", run_dir]


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _proc_start(os.getpid())}


def _proc_start(pid):
    """The process' start time from /proc (None where there is no /proc, or for a zombie / no process)."""
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _alive(worker: dict) -> bool:
    if os.path.isdir("/proc"):
        return _proc_start(worker.get("pid", -1)) == worker.get("start") is not None
    try:
        os.kill(int(worker["pid"]), 0)
        return True
    except (OSError, KeyError, ValueError):
        return False


def _fail_dead_workers(study, storage) -> None:
    """RUNNING trials whose worker process on this machine is gone: FAIL, and queued again with their params.

    The journal file has no heartbeats; an RDB storage has them too (other machines' workers)."""
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    if hasattr(storage, "record_heartbeat"):
        fail_stale_trials(study)
    host, sid = socket.gethostname(), storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") != host or _alive(worker):
            continue
        tid = storage.get_trial_id_from_study_id_trial_number(sid, t.number)
        try:  # the attribute first: a finished trial takes no more writes
            storage.set_trial_user_attr(tid, "error", "its worker process died")
            storage.set_trial_state_values(tid, TrialState.FAIL)
        except Exception:  # noqa: BLE001  (another worker failed it first: UpdateFinishedTrialError)
            continue
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        print(f"zoo tune: trial {t.number} lost its worker (pid {worker.get('pid')}); failed, and queued again",
              flush=True)


def _history(path) -> list:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _die_with_parent():  # pragma: no cover  (runs in the child between fork and exec)
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _run_trial(trial, argv, run_dir, metric) -> float:
    """Runs one `zoo train`, reporting each epoch's dev metric to the pruner; returns the final dev metric."""
    import optuna

    env = {**os.environ, "ZOO_NO_TEST": "1", "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    linux = sys.platform.startswith("linux")
    cpu = _children_cpu()
    with open(run_dir + ".log", "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=_die_with_parent if linux else None)
    seen = 0
    try:
        while True:
            done = proc.poll() is not None
            for row in _history(os.path.join(run_dir, "history.csv"))[seen:]:
                seen += 1
                value = _float(row.get(f"val_{metric}"))
                if value is None:
                    continue
                trial.report(value, int(row["epoch"]))
                if trial.should_prune():
                    trial.set_user_attr("pruned_at", int(row["epoch"]))
                    raise optuna.TrialPruned(f"pruned at epoch {row['epoch']}")
            if done:
                break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        trial.set_user_attr("cpu_s", round(_children_cpu() - cpu, 2))
    return _final(trial, proc.returncode, run_dir, metric)


def _children_cpu() -> float:
    """CPU-seconds (user + system) of this process' finished children."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _float(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _final(trial, rc, run_dir, metric) -> float:
    if rc != 0:
        with open(run_dir + ".log") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        reason = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else f"exit {rc}")
        trial.set_user_attr("error", reason[:300])
        raise TrialFailed(reason)
    try:
        with open(os.path.join(run_dir, "metrics.json")) as f:
            value = _float(json.load(f).get("val", {}).get(metric))
    except (OSError, ValueError):
        value = None
    if value is None:
        trial.set_user_attr("error", f"no dev {metric} in metrics.json (the source needs a dev split: --val-split)")
        raise TrialFailed(trial.user_attrs["error"])
    return value


@dataclasses.dataclass
class _Stage:
    search: Search
    study: object
    storage: object
    space: dict
    prefix: str = ""


def _counts(study) -> dict:
    counts = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _finished(counts) -> int:
    return counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)


def _objective(stage: _Stage):
    from optuna.trial import TrialState

    s = stage.search

    def objective(trial):
        trial.set_user_attr("worker", _me())
        ahead = [t for t in stage.study.get_trials(deepcopy=False, states=(
            TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)) if t.number < trial.number]
        if len(ahead) >= s.trials:
            trial.set_user_attr("error", "surplus: other workers' trials make up --trials")
            raise _Surplus()
        values = suggest(trial, stage.space)
        run_dir = os.path.join(s.out, "trials", f"{stage.prefix}{trial.number:04d}")
        os.makedirs(os.path.dirname(run_dir), exist_ok=True)
        trial.set_user_attr("values", values)
        trial.set_user_attr("run_dir", os.path.abspath(run_dir))
        trial.set_user_attr("command", shlex.join(s.argv(run_dir, values, zoo=True)))
        return _run_trial(trial, s.argv(run_dir, values), run_dir, s.metric)

    return objective


def _fmt(values: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _progress(stage: _Stage):
    s = stage.search

    def callback(study, t):
        if t.user_attrs.get("error", "").startswith("surplus"):
            return
        counts = _counts(study)
        if t.state.name == "COMPLETE":
            what = f"dev {s.metric} {t.value:.4f}"
        elif t.state.name == "PRUNED":
            last = t.intermediate_values.get(t.user_attrs.get("pruned_at"))
            what = f"pruned at epoch {t.user_attrs.get('pruned_at')} (dev {s.metric} {last:.4f})"
        else:
            what = f"failed: {t.user_attrs.get('error', '?')} (log {t.user_attrs.get('run_dir', '?')}.log)"
        try:
            best = f"best {study.best_value:.4f} (trial {stage.prefix}{study.best_trial.number})"
        except ValueError:
            best = "no best yet"
        print(f"zoo tune: trial {stage.prefix}{t.number} [{_fmt(t.user_attrs.get('values', {}))}] {what}; "
              f"{t.user_attrs.get('cpu_s', 0):.0f} CPU-s; {_finished(counts)}/{s.trials} finished; {best}",
              flush=True)

    return callback


def _run_stage(stage: _Stage) -> None:
    """Runs trials until the study holds `trials` finished ones (counting every worker's)."""
    s, study = stage.search, stage.study
    objective, progress = _objective(stage), _progress(stage)
    while True:
        _fail_dead_workers(study, stage.storage)
        counts = _counts(study)
        if _finished(counts) >= s.trials:
            return
        used = sum(t.user_attrs.get("cpu_s", 0.0) for t in study.get_trials(deepcopy=False))
        if s.budget_cpu_s is not None and used >= s.budget_cpu_s:
            print(f"zoo tune: the trials used {used:.0f} CPU-seconds (budget {s.budget_cpu_s:g}); stopping", flush=True)
            return
        if hasattr(study.sampler, "is_exhausted") and study.sampler.is_exhausted(study):
            print(f"zoo tune: the grid is exhausted after {_finished(counts)} trials", flush=True)
            return
        if _finished(counts) + counts.get("RUNNING", 0) >= s.trials:
            time.sleep(2)  # other workers' trials make up the count; wait for them
            continue
        study.optimize(objective, n_trials=1, catch=(TrialFailed, _Surplus), callbacks=[progress])


def _open_study(s: Search, storage, name, settings, *, must_exist: bool, space_from_study: bool = False):
    """Creates the study or joins it (same settings); returns `(study, space)`."""
    import optuna

    exists = name in [x.study_name for x in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]
    where = s.storage and _redact(s.storage) or os.path.join(s.out, JOURNAL)
    if must_exist and not exists:
        raise ValueError(f"Nothing to resume: {where} holds no study {name!r}. Start the search without --resume.")
    epochs = s.fixed.get("epochs") or (_spec(s.model).recipe or Recipe()).epochs
    direction = "minimize" if _mode(s.metric) == "min" else "maximize"
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                sampler=optuna.samplers.RandomSampler(), pruner=make_pruner(s.prune, epochs))
    have = study.user_attrs.get("zoo")
    if have is None:
        study.set_user_attr("zoo", settings)
        have = settings
    mine = json.loads(json.dumps(settings))
    if space_from_study:
        mine["space"] = have.get("space")
    if have != mine:
        diff = ", ".join(k for k in sorted(set(have) | set(mine)) if have.get(k) != mine.get(k))
        raise ValueError(f"Study {name!r} in {where} is another search (differs in: {diff}); "
                         "pass another --out, or --study NAME with --storage.")
    space = parse_spaces(f"{k}={v}" for k, v in have["space"].items())
    study.sampler = make_sampler(s.sampler, space, s.search_seed, s.grid_points)
    return study, space


def _mode(metric: str) -> str:
    from callbacks.early_stopping import mode_for

    return "min" if mode_for(metric, "max") == "min" else "max"


def default_metric(model: str) -> str:
    return "accuracy" if _spec(model).task in ("classification", "sequence") else "loss"


def _settings(s: Search, space: dict) -> dict:
    return json.loads(json.dumps({"model": s.model, "data": s.data, "metric": s.metric, "fixed": s.fixed_argv,
                                  "space": {k: str(d) for k, d in space.items()}}))


def narrow(space: dict, trials, maximize: bool, keep: float = 0.25) -> dict:
    """Coarse to fine: each range shrunk to the best `keep` of the complete trials (padded by a tenth of the
    old range, on the log scale for log ranges); choices to those the best trials took."""
    done = sorted((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value, reverse=maximize)
    top = done[:max(2, math.ceil(keep * len(done)))]
    out = {}
    for name, d in space.items():
        xs = [t.params[param_name(name, d)] for t in top if param_name(name, d) in t.params]
        if not xs:
            out[name] = d
        elif d.kind == "choice":
            out[name] = Dist("choice", choices=tuple(c for c in d.choices if c in xs))
        else:
            f, inv = (math.log, math.exp) if d.kind in ("log", "1-log") else (float, float)
            pad = 0.1 * (f(d.high) - f(d.low))
            lo = max(d.low, float(f"{inv(f(min(xs)) - pad):.4g}"))
            hi = min(d.high, float(f"{inv(f(max(xs)) + pad):.4g}"))
            if d.kind == "int":
                lo, hi = int(math.floor(lo)), int(math.ceil(hi))
                lo, hi = (lo, hi) if lo < hi else (max(d.low, lo - 1), min(d.high, hi + 1))
            out[name] = Dist(d.kind, lo, hi)
    return out


def run(s: Search) -> dict:
    """Runs (or joins, or resumes) the search; writes best.json and the plots in `s.out`; returns best.json.

    Raises:
        ValueError: bad storage, a study of another search, nothing to resume, no finished trial (one line).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    s.metric = s.metric or default_metric(s.model)
    name = s.study or "zoo-tune"
    storage = open_storage(s.out, s.storage)
    study, space = _open_study(s, storage, name, _settings(s, s.space), must_exist=s.resume)
    print(f"zoo tune: {s.model} on {s.data}: study {name!r}, {s.sampler} sampler, pruner {s.prune}, "
          f"dev {s.metric} ({study.direction.name.lower()}); space {_fmt_space(space)}", flush=True)
    stages = [_Stage(s, study, storage, space)]
    _run_stage(stages[0])
    plots(study, s.out)
    if s.refine:
        _wait_running(study)
        fine = narrow(space, study.get_trials(deepcopy=False), study.direction.name == "MAXIMIZE")
        study2, fine = _open_study(s, storage, f"{name}-refine", _settings(s, fine), must_exist=False,
                                   space_from_study=True)
        print(f"zoo tune: refine around the best trials: {_fmt_space(fine)}", flush=True)
        stages.append(_Stage(s, study2, storage, fine, prefix="refine-"))
        _run_stage(stages[1])
        plots(study2, s.out, prefix="refine-")
    best = _best_json(s, stages)
    from zoo.training import rundir

    rundir.write_json(os.path.join(s.out, BEST), best)
    test = best.get("test") or {}
    shown = " ".join(f"{k} {v:.4f}" for k, v in test.items() if k in ("loss", "accuracy", "f1"))
    print(f"zoo tune: best trial {best['trial']}: dev {s.metric} {best['dev']:.4f}"
          f"{'; test ' + shown if shown else ''} -> {os.path.join(s.out, BEST)}", flush=True)
    print(f"zoo tune: train it: zoo train {s.model} --from-tune {s.out}", flush=True)
    return best


def _fmt_space(space) -> str:
    return " ".join(f"{k}={d}" for k, d in space.items())


def _wait_running(study, poll=2.0) -> None:
    while _counts(study).get("RUNNING", 0):
        time.sleep(poll)


def _best_json(s: Search, stages) -> dict:
    maximize = stages[0].study.direction.name == "MAXIMIZE"
    pool = [(st, t) for st in stages for t in st.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not pool:
        raise ValueError(f"No trial of the search in {s.out!r} completed; see the logs in "
                         f"{os.path.join(s.out, 'trials')}.")
    stage, t = (max if maximize else min)(pool, key=lambda p: p[1].value)
    values, run_dir = t.user_attrs["values"], t.user_attrs["run_dir"]
    counts = {}
    for st in stages:
        for k, v in _counts(st.study).items():
            counts[k.lower()] = counts.get(k.lower(), 0) + v
    return {
        "model": s.model, "data": s.data, "study": stage.study.study_name, "trial": f"{stage.prefix}{t.number}",
        "metric": s.metric, "direction": "maximize" if maximize else "minimize", "dev": t.value,
        "params": dict(t.params), "values": values, "fixed": s.fixed, "model_kwargs": s.model_kwargs,
        "seed": s.seed, "run_dir": run_dir, "host": t.user_attrs["worker"]["host"],
        "command": t.user_attrs["command"], "test": _test_once(stage.study, t, run_dir),
        "trials": counts, "space": {st.prefix or "coarse": _settings(s, st.space)["space"] for st in stages},
    }


def _test_once(study, t, run_dir):
    """The test split of the best trial, evaluated once for the whole study (kept in the study's attributes)."""
    key = f"test_{t.number}"
    if key in study.user_attrs:
        return study.user_attrs[key]
    if not os.path.isdir(run_dir):
        return None  # the trial ran on another machine; that worker evaluates it
    lock = run_dir + ".test-lock"
    while not _take(lock):  # another worker on this folder is evaluating it
        time.sleep(0.5)
        attrs = study.user_attrs  # read from the storage each time
        if key in attrs:
            return attrs[key]
    env = {k: v for k, v in os.environ.items() if k != "ZOO_NO_TEST"}
    proc = subprocess.run([sys.executable, "-m", "zoo.cli", "evaluate", run_dir, "--split", "test", "--json"],
                          capture_output=True, text=True, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"zoo tune: no test score for the best trial: {err}", flush=True)
        result = {"error": err}
    else:
        result = json.loads(lines[-1])
    study.set_user_attr(key, result)
    return result


def _take(lock) -> bool:
    """Creates `lock` (holding this process' identity); False while a live process holds it."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            with open(lock) as f:
                holder = json.load(f)
        except (OSError, ValueError):
            return False  # being written
        if holder.get("host") == socket.gethostname() and not _alive(holder):
            os.remove(lock)  # its holder died
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(_me(), f)
    return True


def plots(study, out, prefix="") -> list:
    """Optimisation history, parallel coordinates, parameter importances and intermediate values as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written = []
    for name, fn in (("history", ovm.plot_optimization_history), ("parallel_coordinates", ovm.plot_parallel_coordinate),
                     ("importances", ovm.plot_param_importances), ("intermediate_values", ovm.plot_intermediate_values)):
        path = os.path.join(out, f"{prefix}{name}.png")
        try:
            ax = fn(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
        except Exception as exc:  # noqa: BLE001  (too few trials, a constant parameter, ...)
            print(f"zoo tune: no {prefix}{name} plot: {(str(exc).splitlines() or [type(exc).__name__])[0]}",
                  flush=True)
    if written:
        print(f"zoo tune: plots {', '.join(written)}", flush=True)
    return written


def from_tune(path, model: str) -> dict:
    """best.json of a search folder (or the file itself) for `zoo train --from-tune`; checks the model.

    Returns:
        `{"data", "overrides", "model_kwargs", "seed"}`: the best trial's fixed settings and parameters.
    """
    from zoo.training import rundir

    file = os.path.join(path, BEST) if os.path.isdir(path) else os.fspath(path)
    if not os.path.isfile(file):
        raise ValueError(f"--from-tune {os.fspath(path)!r}: no {BEST} there (has the search finished a trial?).")
    best = rundir.read_json(file)
    if best.get("model") != model:
        raise ValueError(f"--from-tune {file!r} is a search of {best.get('model')!r}, not {model!r}.")
    overrides = {**best.get("fixed", {}), **best.get("values", {})}
    if isinstance(overrides.get("augment"), str):
        overrides["augment"] = tuple(a for a in overrides["augment"].split("+") if a and a != "none")
    elif isinstance(overrides.get("augment"), list):
        overrides["augment"] = tuple(overrides["augment"])
    return {"data": best.get("data"), "overrides": overrides, "model_kwargs": best.get("model_kwargs") or {},
            "seed": best.get("seed")}
