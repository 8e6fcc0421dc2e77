"""The layering the project promises: pipeline/ is pure (no Celery), emulator/ is independent
(no pipeline/), tasks/ is where Celery lives. Checked in fresh interpreters."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _modules(package: str) -> list[str]:
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(REPO / package)])
            if m.name != "__main__"]


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True)
    import json

    return set(json.loads(done.stdout))


def test_pipeline_imports_no_celery() -> None:
    loaded = _loaded_after_import(["pipeline", *_modules("pipeline")])
    assert not {m for m in loaded if m == "celery" or m.startswith(("celery.", "kombu"))}


def test_emulator_imports_nothing_from_pipeline() -> None:
    loaded = _loaded_after_import(["emulator", *_modules("emulator")])
    assert not {m for m in loaded if m == "pipeline" or m.startswith("pipeline.")}


@pytest.mark.parametrize("name", ["normalize", "validate", "batch", "upsert", "confirm",
                                  "patch", "delete", "flush"])
def test_task_names(name: str) -> None:
    from tasks import app

    assert f"ordersync.{name}" in app.tasks
