"""Mixed precision (autocast) and channels-last training: used when asked, off by default, ids unchanged."""

from __future__ import annotations

import pytest
import torch

from kdbench.engine import JobFailed, run_job
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import write_suite

SUITE = """\
name: amp
dataset: {name: digits}
recipe:
  epochs: 3
  batch_size: 32
  optimizer: {name: sgd, lr: 0.05}
students:
  - {name: s, arch: cnn}
methods: [none]
seeds: [0]
"""


def _baseline(tmp_path, recipe_lines: str = ""):
    text = SUITE.replace("  optimizer: {name: sgd, lr: 0.05}\n", "  optimizer: {name: sgd, lr: 0.05}\n" + recipe_lines)
    return expand(load_suite(str(write_suite(tmp_path, text)))).entries[0].job


def test_the_defaults_leave_job_ids_unchanged_and_setting_them_changes_ids(tmp_path):
    plain = _baseline(tmp_path)
    assert "precision" not in plain.recipe and "channels_last" not in plain.recipe
    assert _baseline(tmp_path, "  precision: fp32\n  channels_last: false\n").job_id == plain.job_id
    bf16 = _baseline(tmp_path, "  precision: bf16\n")
    assert bf16.recipe.precision == "bf16" and bf16.job_id != plain.job_id


def _record_first_conv(monkeypatch):
    seen = []
    original = torch.nn.Conv2d.forward

    def forward(self, x):
        out = original(self, x)
        if self.training and self.in_channels > 1 and min(x.shape[2:]) > 1:  # else both layouts coincide
            seen.append((out.dtype, self.weight.is_contiguous(memory_format=torch.channels_last)))
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", forward)
    return seen


def test_bf16_autocast_and_channels_last_are_used_in_training(tmp_path, monkeypatch):
    seen = _record_first_conv(monkeypatch)
    job = _baseline(tmp_path, "  precision: bf16\n  channels_last: true\n")
    final = run_job(job, Store(tmp_path / "s"))
    assert seen and all(s == (torch.bfloat16, True) for s in seen)
    fp32 = run_job(_baseline(tmp_path), Store(tmp_path / "fp32"))
    assert fp32["test_acc"] > 0.8 and abs(final["test_acc"] - fp32["test_acc"]) < 0.05  # learns as well


def test_fp32_is_the_default_and_trains_in_fp32(tmp_path, monkeypatch):
    seen = _record_first_conv(monkeypatch)
    run_job(_baseline(tmp_path), Store(tmp_path / "s"))
    assert seen and all(s == (torch.float32, False) for s in seen)


def test_fp16_without_a_gpu_is_a_clear_failure(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: fp16 is allowed")
    with pytest.raises(JobFailed, match="fp16 needs a CUDA device"):
        run_job(_baseline(tmp_path, "  precision: fp16\n"), Store(tmp_path / "s"))
