"""Dataclass configs as command-line flags: one frozen dataclass per entry point (CleanRL style)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one `--flag` per field of `cls`; the field's metadata['help'] becomes its help text."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        typ = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        if typ is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
        elif typ in (int, float, str):
            parser.add_argument(flag, dest=f.name, type=typ, default=default, help=help_text)
        else:  # tuples of ints, e.g. horizons
            parser.add_argument(flag, dest=f.name, type=int, nargs="+", default=default, help=help_text)


def dataclass_from_args(cls: type[T], ns: argparse.Namespace, **extra: Any) -> T:
    """Build `cls` from parsed flags (plus explicit extras)."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    kwargs = {f.name: getattr(ns, f.name) for f in fields if hasattr(ns, f.name)}
    kwargs.update(extra)
    for f in fields:
        if isinstance(kwargs.get(f.name), list):
            kwargs[f.name] = tuple(kwargs[f.name])
    return cls(**kwargs)


def write_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as JSON next to a run's outputs."""
    Path(path).write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
