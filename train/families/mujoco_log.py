"""MuJoCo's compiler warnings, minus one that floods every run's log.

Gymnasium's `half_cheetah.xml` sets `settotalmass`, which MuJoCo >= 3.3 compiles with a deprecation
warning, printed by its C default handler on every env made (hundreds of lines per training run, one
per task and worker). The model it builds is unchanged, and the asset is Gymnasium's, not ours to edit;
so that one message is dropped and every other MuJoCo warning becomes a Python `RuntimeWarning`
(filterable, and visible to pytest) instead of a bare print.
"""

from __future__ import annotations

import warnings

import mujoco

KNOWN_NOISE = ("compiler attribute 'settotalmass' is deprecated",)


def _handle(message: str) -> None:
    if not message.startswith(KNOWN_NOISE):
        warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


def install() -> None:
    """Route MuJoCo's warnings through `_handle` (idempotent; call before making an env)."""
    if mujoco.get_mju_user_warning() is not _handle:
        mujoco.set_mju_user_warning(_handle)
