"""Old spellings that still work for one release, with a DeprecationWarning (0.2 -> 0.3)."""
import warnings

_UNSET = object()


def renamed_kwarg(func: str, old: str, new: str, old_value, new_value, default):
    """The value of keyword ``new`` of ``func``, taking the deprecated ``old`` when given.

    Both given -> TypeError (as Python does for a repeated argument)."""
    if old_value is _UNSET:
        return new_value
    if new_value is not default and new_value != default:
        raise TypeError(f"{func}() got both '{old}' (deprecated) and '{new}'")
    warnings.warn(f"{func}(): '{old}=' is now '{new}=' ('{old}' is deprecated and goes in 0.3)",
                  DeprecationWarning, stacklevel=3)
    return old_value


def deprecated_attribute(owner: str, old: str, new: str, value):
    """Warn that ``owner.old`` is now ``owner.new`` and return the value."""
    warnings.warn(f"{owner}.{old} is now {owner}.{new} ('{old}' is deprecated and goes in 0.3)",
                  DeprecationWarning, stacklevel=3)
    return value
