"""Shared pytest fixtures: one embedded Ray instance for the whole session (tests marked `ray`)."""

from __future__ import annotations

import os

import pytest

# the tests run in one process whatever the default and the machine's load (DSE_MODEL_PROCESS=auto forks a model
# process when a CPU is idle), unless a test asks for the model process (DSE_MODEL_PROCESS=always)
os.environ.setdefault("DSE_MODEL_PROCESS", "never")


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
