"""Package attributes imported from their submodule on first use (PEP 562)."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """A module-level ``__getattr__`` for ``package``.

    Parameters
    ----------
    package : str
        The package's name (its ``__name__``).
    exports : dict
        Public name -> the submodule (relative to ``package``) that defines it.

    Returns
    -------
    callable
        ``__getattr__(name)``: the attribute, its submodule imported at the first access; an
        ``AttributeError`` for a name not in ``exports``.
    """

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
