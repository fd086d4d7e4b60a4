"""Values computed once per live object, keyed on its identity: for objects that are never mutated once built
(a plan table's steps, a frozen pydantic model) but whose hash or equality would cost more than the value."""

from __future__ import annotations

from operator import is_
from typing import Any, Callable, TypeVar

__all__ = ["by_identity", "by_identities"]

T = TypeVar("T")


def by_identities(cache: dict[tuple[int, ...], tuple[tuple, Any]], objs: tuple, make: Callable[..., Any],
                  limit: int = 256) -> Any:
    """`make(*objs)`, computed once per combination of objects: `cache` is keyed on their ids and keeps the
    objects beside the value (so their ids are not reused while it is cached); it is cleared past `limit`
    entries."""
    key = tuple(map(id, objs))
    hit = cache.get(key)
    if hit is None or not all(map(is_, hit[0], objs)):  # (map: no generator frame per call)
        if len(cache) > limit:
            cache.clear()
        hit = cache[key] = (objs, make(*objs))
    return hit[1]


def by_identity(cache: dict[tuple[int, ...], tuple[tuple, Any]], obj: T, make: Callable[[T], Any],
                limit: int = 256) -> Any:
    """`make(obj)`, computed once per object (`by_identities` of one, without its tuple work on a hit)."""
    hit = cache.get((id(obj),))
    if hit is not None and hit[0][0] is obj:
        return hit[1]
    return by_identities(cache, (obj,), make, limit)
