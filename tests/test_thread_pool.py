"""dse's background threads start after polars has loaded numpy: polars' lazy numpy proxy fails when two
threads load it at once (a sweep attached to a Ray cluster died of it in `OptunaMirror.close`)."""

import subprocess
import sys

CHECK = """
import types
import polars._dependencies as dep
from dse.runs.inflight import thread_pool
print(type(dep.numpy) is types.ModuleType)
pool = thread_pool("dse-test")
print(type(dep.numpy) is types.ModuleType)
print(pool.submit(lambda: __import__("polars").Series([1.5]).sum()).result())
pool.shutdown()
"""


def test_thread_pool_loads_polars_numpy_on_the_calling_thread():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split()
    # still the lazy proxy on import (else this test could not fail), a real module once a pool starts
    assert out == ["False", "True", "1.5"], out

