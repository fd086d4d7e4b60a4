"""Shared pytest fixtures: one embedded Ray instance for the whole session (tests marked `ray`)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """A real embedded 2-CPU Ray, started once per test session and shut down at the end."""
    ray = pytest.importorskip("ray")
    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
        started = True
    yield ray
    if started:
        ray.shutdown()
