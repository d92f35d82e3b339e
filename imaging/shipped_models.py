"""Where the models that ship with Skyfleet lie: one Triton-layout repository per model.

A site serves these until a release replaces them; training writes its next version beside
them when asked to. The folders are package data (`pyproject.toml`).
"""

from pathlib import Path

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED_QUALITY_MODEL_DIR = SHIPPED_MODELS_DIR / "quality"
SHIPPED_REALBOGUS_MODEL_DIR = SHIPPED_MODELS_DIR / "realbogus"
