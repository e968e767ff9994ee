"""Shared test fixtures. Qt runs offscreen; onnxruntime telemetry is off; user folders are
redirected into a temporary directory so tests never touch the real home."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"


@pytest.fixture(autouse=True, scope="session")
def _isolated_user_dirs(tmp_path_factory):
    home = tmp_path_factory.mktemp("qperf_home")
    old = os.environ.get("QPERF_HOME")
    os.environ["QPERF_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("QPERF_HOME", None)
    else:
        os.environ["QPERF_HOME"] = old


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (real validation data lives outside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder where tests save pictures for human review (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
