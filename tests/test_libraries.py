"""The optimized BLAS is what MLX uses on Linux, and its absence degrades gracefully."""

import os
import subprocess
import sys

import pytest

from srgan_mlx.native.libraries import active_blas, is_reference_blas

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the BLAS loader acts on Linux only")

PROBE = "import srgan_mlx, mlx.core as mx; from srgan_mlx.native.libraries import active_blas; mx.eval(mx.ones((4, 4)) @ mx.ones((4, 4))); print(active_blas())"


def run_probe(**env):
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env={**os.environ, **env})


@linux_only
def test_active_blas_is_not_the_bundled_reference():
    assert not is_reference_blas(active_blas()), active_blas()


@linux_only
def test_opt_out_keeps_reference_blas_silently():
    result = run_probe(SRGAN_MLX_BLAS="none")
    assert result.returncode == 0
    assert is_reference_blas(result.stdout.strip()), result.stdout
    assert result.stderr == ""


@linux_only
def test_missing_library_warns_in_one_line_and_still_works():
    result = run_probe(SRGAN_MLX_BLAS="/nonexistent/libblas.so")
    assert result.returncode == 0
    assert len(result.stderr.splitlines()) == 1
    assert "no optimized BLAS" in result.stderr and "/nonexistent/libblas.so" in result.stderr
    assert is_reference_blas(result.stdout.strip())


@linux_only
@pytest.mark.parametrize("given", [{}, {"GOMP_SPINCOUNT": "7", "OMP_WAIT_POLICY": "ACTIVE"}])
def test_openmp_runtime_reads_the_wait_settings_and_a_users_own_are_kept(given):
    """libgomp itself reports (OMP_DISPLAY_ENV) the settings that importing srgan_mlx makes before it loads."""
    env = {key: value for key, value in os.environ.items() if key not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    result = subprocess.run(
        [sys.executable, "-c", "import srgan_mlx"], capture_output=True, text=True,
        env={**env, **given, "OMP_DISPLAY_ENV": "VERBOSE"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = {"GOMP_SPINCOUNT": "10000", "OMP_WAIT_POLICY": "PASSIVE", **given}
    for name, value in expected.items():
        assert f"{name} = '{value}'" in result.stderr, result.stderr


def test_info_command_reports_blas():
    result = subprocess.run([sys.executable, "-m", "srgan_mlx", "info"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "blas: " in result.stdout and "mlx " in result.stdout
