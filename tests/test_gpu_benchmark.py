"""Smoke test of benchmarks/gpu.py on the CPU (tiny sizes, one timed step)."""

import json

import pytest


@pytest.fixture(scope="module")
def bench():
    from benchmarks import gpu

    return gpu


def test_benchmark_table_has_four_settings(bench, tmp_path):
    sizes = {"lenet5": ((28, 28, 1), 4)}
    result = bench.run_benchmark(["lenet5", "not_a_model"], steps=1, sizes=sizes, out_dir=tmp_path)
    rows = result["rows"]
    assert [(r["precision"], r["xla"]) for r in rows] == [
        ("float32", False), ("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True)
    ]
    assert all(r["images_per_s"] > 0 and r["loss_finite"] for r in rows)
    assert rows[0]["speedup"] == 1.0
    saved = json.loads((tmp_path / "gpu_benchmark.json").read_text())
    assert saved["rows"] == rows
    assert "| lenet5 | 28x28x1 | 4 | mixed_bfloat16 | on |" in (tmp_path / "gpu_benchmark.md").read_text()


def test_check_reports_no_problem_for_xla_ready_models(bench):
    assert bench.check_all(["lenet5", "rnn"]) == {}
