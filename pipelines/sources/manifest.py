"""A folder's image probes, kept on disk: an unchanged folder opens in O(listing).

Every image of a folder source is probed (fully decoded once, `images.probe`) before
training. The results are stored per file, keyed by its path relative to the folder
with its size and mtime: `{relpath: [size, mtime_ns, result]}`, where the result is
`[[height, width], is_gray]` or the error message. A later run stats each file and
probes only new or changed ones; files that are gone drop out. New files are probed
in parallel across the CPUs (a forked process pool; `ZOO_PROBE_WORKERS` caps it).
A new Pillow, format list or pixel limit invalidates the whole manifest.

Where: `ROOT/.zoo-manifest.json` when the folder is writable, else
`$XDG_CACHE_HOME/zoo/manifests/<hash of ROOT's absolute path>.json` (`~/.cache/...`).
Written atomically (temporary file, then rename); when neither place is writable the
run goes on without one. `ZOO_MANIFEST=0` turns it off.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import tempfile

from pipelines.sources import images

NAME = ".zoo-manifest.json"
VERSION = 2
MIN_PARALLEL = 64  # fewer new files than this are probed in-process


def _header():
    import PIL

    limit = getattr(images, "max_pixels", lambda: None)()  # a changed pixel limit re-probes
    return {"version": VERSION, "pillow": PIL.__version__, "decodable": list(images.DECODABLE), "max_pixels": limit}


def locations(root):
    """Where the manifest of `root` may live, in order of preference."""
    root = os.path.abspath(root)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return [os.path.join(root, NAME), os.path.join(cache, "zoo", "manifests", digest + ".json")]


def load(root) -> dict:
    """The stored entries for `root` (empty when none is readable or it is from another probe)."""
    for path in locations(root):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("header") == _header() and isinstance(data.get("entries"), dict):
            return data["entries"]
    return {}


def save(root, entries) -> str | None:
    """Writes `entries` atomically to the first writable location; returns it (None: none was)."""
    text = json.dumps({"header": _header(), "root": os.path.abspath(root), "entries": entries},
                      separators=(",", ":"))
    for path in locations(root):
        tmp = None
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=NAME + ".", suffix=".tmp", dir=os.path.dirname(path))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from others sharing the dataset
            os.replace(tmp, path)
            return path
        except OSError:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
    return None


def _encode(size, mtime_ns, result, path):
    """`[size, mtime_ns, height, width, is_gray]`, or `[size, mtime_ns, message]` (flat: quick to load)."""
    if isinstance(result, Exception):
        return [size, mtime_ns, str(result).replace(path, "{path}")]
    (h, w), gray = result
    return [size, mtime_ns, h, w, bool(gray)]


def _decode(stored, path):
    if len(stored) == 3:
        return images.CorruptImageError(stored[2].replace("{path}", path))
    return (stored[2], stored[3]), stored[4]


def _probe_one(path):
    try:
        return images.probe(path)
    except images.CorruptImageError as e:
        return e


def _probe_chunk(paths):
    return [_probe_one(p) for p in paths]


def workers() -> int:
    """Processes for a first scan: the CPUs this process may use, capped by $ZOO_PROBE_WORKERS."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cap = os.environ.get("ZOO_PROBE_WORKERS", "").strip()
    return max(1, min(n, int(cap))) if cap.isdigit() else n


def probe_all(paths, num_workers=None, pool="process"):
    """`images.probe` of every path (result or CorruptImageError), in parallel when worth it.

    `pool`: "process" (forked, default: the probe is mostly Python, which threads cannot share)
    or "thread".
    """
    paths = list(paths)
    n = workers() if num_workers is None else num_workers
    if n <= 1 or len(paths) < MIN_PARALLEL:
        return _probe_chunk(paths)
    from PIL import Image

    Image.init()  # load the format plugins once, before forking
    size = max(1, min(256, len(paths) // (n * 8)))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    if pool == "thread":
        executor = concurrent.futures.ThreadPoolExecutor(n)
    else:
        executor = concurrent.futures.ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"))
    with executor:
        return [r for part in executor.map(_probe_chunk, chunks) for r in part]


def enabled() -> bool:
    return os.environ.get("ZOO_MANIFEST", "1").strip().lower() not in ("0", "false", "off", "no")


_SEEN: dict = {}  # (path, size, mtime_ns, header) -> result, in this process


def results(root, paths, *, use_manifest=None, num_workers=None):
    """The probe result (or CorruptImageError) of every path: known in this process, stored in the
    manifest with the same size and mtime, or probed now (in parallel); the manifest is updated."""
    use_manifest = enabled() if use_manifest is None else use_manifest
    stored = load(root) if use_manifest else {}
    header, out, entries, todo = json.dumps(_header()), {}, {}, []
    prefix = os.path.join(root, "")
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as exc:  # vanished, or a dangling symlink
            out[p] = images.CorruptImageError(f"{p}: cannot be read ({exc.strerror or exc})")
            continue
        key = (p, st.st_size, st.st_mtime_ns, header)
        rel = p[len(prefix):] if p.startswith(prefix) else os.path.relpath(p, root)
        old = stored.get(rel)
        if key in _SEEN:
            out[p] = _SEEN[key]
            entries[rel] = _encode(st.st_size, st.st_mtime_ns, out[p], p)
        elif old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            out[p] = _SEEN[key] = _decode(old, p)
            entries[rel] = old
        else:
            todo.append((p, rel, key))
    for (p, rel, key), result in zip(todo, probe_all([t[0] for t in todo], num_workers)):
        out[p] = _SEEN[key] = result
        entries[rel] = _encode(key[1], key[2], result, p)
    if use_manifest and entries != stored:
        save(root, entries)
    return [out[p] for p in paths]


def check_images(root, paths, *, strict=False, use_manifest=None, num_workers=None):
    """`images.check_images` for the files of folder `root`, through `results`: same return value,
    the same warning per unreadable file and the same final count."""
    return images.tally(paths, results(root, paths, use_manifest=use_manifest, num_workers=num_workers),
                        strict=strict)
