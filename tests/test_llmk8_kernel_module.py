"""kernel.kernel_module: the compiled module by name, imported once and kept; an unknown name is an error."""

import importlib

import pytest

from dse.model import kernel


@pytest.mark.parametrize("name", [f[:-3] for f in kernel.KERNEL_FILES])
def test_kernel_module_is_the_package_module_and_kept(name):
    pytest.importorskip("numba")
    mod = kernel.kernel_module(name)
    assert mod is importlib.import_module(f"dse.model.{name}")
    assert kernel.kernel_module(name) is mod
    assert kernel._MODULES[name] is mod


@pytest.mark.parametrize("name", ["perf", "kernel", "", "step_kernel.py"])
def test_kernel_module_refuses_other_names(name):
    with pytest.raises(ValueError):
        kernel.kernel_module(name)
