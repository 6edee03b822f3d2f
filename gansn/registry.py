"""One small generic registry: a name -> object table for every extension point.

Norms, architectures, datasets, losses and metrics each own one ``Registry``.  Users add
their own entries from their own module::

    from gansn.nn.norms import NORMS, Norm

    @NORMS.register("my_norm")
    class MyNorm(Norm):
        ...

and select them by name from the config (``norm@d_norm=my_norm`` with a YAML file, or
``d_norm.name=my_norm``), after importing that module (``imports=[my_package.my_module]``
on the ``gansn-train`` command line).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from gansn.errors import ConfigError, UnknownNameError, close_matches

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually classes or factory functions)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None, obj: T | None = None, *, override: bool = False):
        """Register ``obj`` under ``name``; without ``obj`` acts as a decorator.

        Registering a name twice is an error unless ``override=True``, so two plugins
        cannot silently shadow each other.
        """

        def add(o: T) -> T:
            key = name or getattr(o, "__name__", None)
            if not key:
                raise ValueError(f"cannot infer a {self.kind} name for {o!r}; pass name=")
            if key in self._entries and not override and self._entries[key] is not o:
                raise ConfigError(
                    f"{self.kind} {key!r} is already registered ({self._entries[key]!r}); "
                    "pass override=True to replace it"
                )
            self._entries[key] = o
            return o

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """Return the entry, or raise ``UnknownNameError`` listing the valid names."""
        try:
            return self._entries[name]
        except KeyError:
            close = close_matches(str(name), self.names())
            # the full list always (plugin users read it as the menu), a near miss first
            hint = f" did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r};{hint} valid names: {', '.join(self.names())}"
            ) from None

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the entry registered as ``name`` with the given arguments."""
        factory = self.get(name)
        if not callable(factory):
            raise TypeError(f"{self.kind} {name!r} is not callable")
        return factory(*args, **kwargs)

    def entries(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs in registration order."""
        return list(self._entries.items())

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def accepted_options(fn: Callable[..., Any], given: Iterable[str] = ()) -> list[str] | None:
    """Keyword options ``fn`` takes besides ``given`` (None: it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    skip = {"self", *given}
    return sorted(
        n
        for n, p in params.items()
        if n not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def check_options(
    what: str, fn: Callable[..., Any], options: Mapping[str, Any], given: Iterable[str] = ()
) -> None:
    """Refuse an option ``fn`` does not take, naming the closest ones it does.

    Called before ``fn(**options)``: a misspelled option is a config mistake that deserves
    the valid names, not the TypeError the call would raise.
    """
    valid = accepted_options(fn, given)
    if valid is None:
        return
    unknown = sorted(set(options) - set(valid))
    if unknown:
        key = unknown[0]
        close = close_matches(key, valid)
        hint = f" did you mean {' or '.join(map(repr, close))}?" if close else ""
        tail = f";{hint} valid options: {', '.join(valid)}" if valid else "; it takes none"
        raise ConfigError(f"{what} has no option {key!r} (unexpected keyword){tail}")


def split_kwargs(cfg: dict[str, Any], key: str = "name") -> tuple[str, dict[str, Any]]:
    """Split a ``{name: ..., **options}`` config node into the name and its options."""
    cfg = dict(cfg)
    if key not in cfg:
        raise ConfigError(f"config node {cfg} has no {key!r} key")
    return cfg.pop(key), cfg
