"""What every section of a pipeline configuration shares: plain-dict round trips and key checks.

Kept apart from :mod:`biosig.config` so that the sections defined next to their code
(:class:`biosig.ctg.CTGConfig`, :class:`biosig.dsp.quality.QualityConfig`) can use it without
importing the pipeline configuration that includes them.
"""

from __future__ import annotations

import dataclasses

from biosig._checks import BiosigError


def check_known_keys(cls, data: dict, where: str) -> None:
    """Refuse keys of ``data`` that are not fields of the dataclass ``cls``, naming the valid ones."""
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            raise BiosigError(f"unknown key {key!r} in {where}; valid keys: {', '.join(known)}")


def check_bool(value, name: str) -> bool:
    """``value`` if it is a bool, else a :class:`BiosigError` (TOML's true/false only)."""
    if not isinstance(value, bool):
        raise BiosigError(f"{name} must be true or false, got {value!r}")
    return value


def to_plain(value):
    """Tuples become lists, so ``to_dict()`` output is what JSON/TOML gives back."""
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    return value


class ConfigSection:
    """``to_dict`` / ``from_dict`` for a flat configuration dataclass named ``[_section]``."""

    _section = "config"

    def to_dict(self) -> dict:
        """Plain dict (lists, numbers, strings, booleans, None), JSON-serialisable."""
        return {f.name: to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict):
        """Build from a dict such as :meth:`to_dict` returns; unknown keys are refused."""
        if not isinstance(data, dict):
            raise BiosigError(f"[{cls._section}] must be a table of key = value, got {data!r}")
        check_known_keys(cls, data, f"[{cls._section}]")
        return cls(**data)
