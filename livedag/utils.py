"""Parsl's `parsl.utils` names that user code imports (checkpoint helpers)."""

from livedag.memo import get_all_checkpoints, get_last_checkpoint

__all__ = ["get_all_checkpoints", "get_last_checkpoint"]
