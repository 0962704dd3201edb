"""The folder source's persistent probe manifest and its parallel first scan (issue 24 item 2)."""

import json
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from pipelines.sources import folder, manifest


def _folder(root, n=6, size=8):
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"c{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")
    (root / "c0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def _open(root, **kw):
    manifest._SEEN.clear()  # a new process, as far as probing goes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        src = folder.open_folder(str(root), val_split=0.0, **kw)
    return src, [str(w.message) for w in caught]


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_MANIFEST", raising=False)


def test_second_open_reads_the_manifest_and_warns_the_same(tmp_path):
    root = _folder(tmp_path / "data")
    first, warned = _open(root)
    assert (root / manifest.NAME).is_file()
    assert warned[-1] == "Skipped 1 corrupt or unreadable image file(s) of 7."
    assert any(w.startswith(f"Skipping {root / 'c0' / 'broken.png'}: ") for w in warned)
    # Same size and mtime: the manifest is trusted, so damage it cannot see is not re-probed.
    victim = root / "c1" / "001.png"
    st = victim.stat()
    victim.write_bytes(b"\0" * st.st_size)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    again, warned_again = _open(root)
    assert warned_again == warned and again.splits == first.splits
    # A changed file (new mtime) is probed again: now it is skipped too.
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _, warned_changed = _open(root)
    assert warned_changed[-1] == "Skipped 2 corrupt or unreadable image file(s) of 7."
    stored = json.loads((root / manifest.NAME).read_text())["entries"]
    assert sorted(stored) == sorted(os.path.relpath(p, root) for p in map(str, root.rglob("*.png")))


def test_removed_files_leave_the_manifest_and_old_versions_are_ignored(tmp_path):
    root = _folder(tmp_path / "data")
    _open(root)
    (root / "c0" / "broken.png").unlink()
    _, warned = _open(root)
    assert not warned
    assert "c0/broken.png" not in json.loads((root / manifest.NAME).read_text())["entries"]
    data = json.loads((root / manifest.NAME).read_text())
    data["header"]["version"] = -1
    (root / manifest.NAME).write_text(json.dumps(data))
    assert manifest.load(str(root)) == {}


def test_unwritable_folder_uses_the_cache_dir_and_nowhere_is_not_an_error(tmp_path, monkeypatch):
    root = _folder(tmp_path / "data")
    (root / manifest.NAME).mkdir()  # cannot be replaced by a file (chmod does not stop root)
    _open(root)
    cached = manifest.locations(str(root))[1]
    assert cached.startswith(str(tmp_path / "cache" / "zoo" / "manifests")) and os.path.isfile(cached)
    assert manifest.load(str(root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "c0" / "000.png"))  # a file: no folder can be made there
    os.remove(cached)
    src, warned = _open(root)
    assert src.splits["train"] == 6 and warned[-1].startswith("Skipped 1 ")
    assert not [p for p in os.listdir(root) if p.endswith(".tmp")]


def test_parallel_scan_matches_the_serial_one(tmp_path):
    root = _folder(tmp_path / "data", n=manifest.MIN_PARALLEL + 6, size=6)
    paths = sorted(map(str, root.rglob("*.png")))
    serial = manifest.probe_all(paths, 1)
    for pool in ("process", "thread"):
        parallel = manifest.probe_all(paths, 2, pool)
        assert [str(r) if isinstance(r, Exception) else r for r in parallel] == \
               [str(r) if isinstance(r, Exception) else r for r in serial]
    assert sum(isinstance(r, Exception) for r in serial) == 1
    src, warned = _open(root)
    assert warned[-1] == f"Skipped 1 corrupt or unreadable image file(s) of {len(paths)}."
    assert src.image_shape == (6, 6, 3)


def test_strict_refuses_from_the_manifest_too(tmp_path):
    root = _folder(tmp_path / "data")
    _open(root)
    with pytest.raises(ValueError, match=r"strict=True.*broken\.png"):
        _open(root, strict=True)
