"""Test-suite wide set-up: the shared hypothesis strategies importable, and the small
synthetic federation (generated once per session) shared by hub and box tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "shared"))
sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["fixtures_small"]
