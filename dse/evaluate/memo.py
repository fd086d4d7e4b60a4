"""Values computed once per live object, keyed on its identity: for objects that are never mutated once built
(a plan table's steps, a frozen pydantic model) but whose hash or equality would cost more than the value."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

__all__ = ["by_identity"]

T = TypeVar("T")


def by_identity(cache: dict[int, tuple[Any, Any]], obj: T, make: Callable[[T], Any], limit: int = 256) -> Any:
    """`make(obj)`, computed once per object: `cache` is keyed on id(obj) and keeps the object beside its value
    (so its id is not reused while it is cached); it is cleared past `limit` entries."""
    hit = cache.get(id(obj))
    if hit is None or hit[0] is not obj:
        if len(cache) > limit:
            cache.clear()
        hit = cache[id(obj)] = (obj, make(obj))
    return hit[1]
