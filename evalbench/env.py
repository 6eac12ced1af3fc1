"""Environment variables evalbench honours, read one way everywhere."""
from __future__ import annotations

import os


def env_flag(name: str) -> bool:
    """A boolean variable as huggingface_hub reads it: 1/true/yes/on (any case) mean set."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: only the local Hugging Face cache may be read."""
    return env_flag("HF_HUB_OFFLINE")
