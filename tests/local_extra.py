"""Whether the ``local`` extra (llama-cpp-python and the model package) is installed, for the tests that need it.

Never decided at import: a module that raised at import under ``CI`` made ``-m "not real_llm"`` fail at
collection. A test that needs the extra uses the ``local_extra`` fixture (tests/conftest.py), which skips it
with the reason, except under ``CI`` (whose script installs the extra), where it fails it: never skipped unseen.
"""

from __future__ import annotations

import os

import pytest

from pytest_llmbench.exceptions import LocalServerError
from pytest_llmbench.session.embedded import check_requirements

try:
    check_requirements()
    MISSING = ""
except LocalServerError as exc:
    MISSING = str(exc)

needs_local = pytest.mark.usefixtures("local_extra")


def require_local_extra() -> None:
    if not MISSING:
        return
    if os.environ.get("CI"):  # .ci/run installs the extra: a skip there would hide a broken install
        pytest.fail(f"the local extra is missing under CI: {MISSING}", pytrace=False)
    pytest.skip(f"local extra not installed: {MISSING}")
