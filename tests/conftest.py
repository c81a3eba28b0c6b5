import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))  # tests/zoo.py, shared by every test module

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def keras_file(tmp_path_factory):
    """Save a zoo case as a .keras file (once per session per case); returns its path."""
    root = tmp_path_factory.mktemp("keras_models")
    cache = {}

    def save(case_id: str, suffix: str = ".keras"):
        import zoo

        key = (case_id, suffix)
        if key not in cache:
            path = root / f"{case_id}{suffix}"
            zoo.keras_model(case_id).save(path)
            cache[key] = path
        return cache[key]

    return save
