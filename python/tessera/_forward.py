"""Wrappers that expose their bound C++ object instead of re-wrapping each of its fields (issue 19)."""
from __future__ import annotations


class CoreView:
    """A mixin for a wrapper that keeps its bound object in ``self._core``: every public attribute
    of that object the wrapper does not define itself is read through (``__getattr__``), listed by
    ``dir()`` (completion), and read-only as it was when each field was a property."""

    def __getattr__(self, name: str):
        core = self.__dict__.get("_core") if not name.startswith("_") else None
        if core is None:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        return getattr(core, name)

    def __setattr__(self, name: str, value) -> None:
        if not name.startswith("_") and not hasattr(type(self), name) and hasattr(self.__dict__.get("_core"), name):
            raise AttributeError(f"'{type(self).__name__}' object's attribute '{name}' is read-only "
                                 f"(it is the bound object's: set it on .core)")
        object.__setattr__(self, name, value)

    def __dir__(self) -> list:
        core = self.__dict__.get("_core")
        names = [n for n in dir(core) if not n.startswith("_")] if core is not None else []
        return sorted(set(super().__dir__()) | set(names))
