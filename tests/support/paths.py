"""Paths of the repository, for the tests and the benchmarks."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
COLLECTION = ROOT / "collections" / "ansible_collections" / "mailstack" / "site"
