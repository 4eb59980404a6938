"""luanet.alloc.tune_malloc: glibc settings `luanet run` applies to its process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "from luanet.alloc import tune_malloc; print(tune_malloc())"


def run_probe(**env_overrides) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(env_overrides)
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_malloc_applies_on_glibc():
    import platform
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert run_probe() == "True"


def test_tune_malloc_leaves_settings_from_the_environment_alone():
    assert run_probe(MALLOC_TRIM_THRESHOLD_="1048576") == "False"
    assert run_probe(MALLOC_MMAP_THRESHOLD_="1048576") == "False"
