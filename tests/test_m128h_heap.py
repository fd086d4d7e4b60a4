"""`heap.keep_heap`: glibc's trim and mmap thresholds set once per process, and not over the malloc parameters the
environment sets."""

from __future__ import annotations

from dse.model import heap


def test_keep_heap_once_and_not_over_the_users_settings(monkeypatch):
    monkeypatch.setattr(heap, "_DONE", [])
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert heap.keep_heap() is False and heap.keep_heap() is False
    monkeypatch.setattr(heap, "_DONE", [])
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")
    assert heap.keep_heap() is False
    monkeypatch.setattr(heap, "_DONE", [])
    monkeypatch.delenv("GLIBC_TUNABLES")
    for k in heap._USER_SETTINGS:
        monkeypatch.delenv(k, raising=False)
    got = heap.keep_heap()
    assert heap.keep_heap() is got  # (once)
    assert heap.TRIM_THRESHOLD_BYTES == 2 * heap.MMAP_THRESHOLD_BYTES == 64 * 2 ** 20
