"""At start peek raises its soft open-file limit to the hard limit (a socket per room)."""

from __future__ import annotations

import subprocess
import sys

import pytest

resource = pytest.importorskip("resource")

_RUN = """
import resource, sys
from peekcli.cli import main
sys.argv = ["peek", "--version"]
try:
    main()
except SystemExit:
    pass
print(*resource.getrlimit(resource.RLIMIT_NOFILE))
"""


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 64:
        pytest.skip("the hard limit is too low to lower the soft one under it")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    out = subprocess.run(
        [sys.executable, "-c", _RUN],
        preexec_fn=low_soft_limit,
        capture_output=True,
        text=True,
        check=True,
    )
    soft_after, hard_after = map(int, out.stdout.split()[-2:])
    assert hard_after == hard
    assert soft_after == hard
