"""Build the optional native extension (oneDNN convolutions, multi-threaded kernels) with CMake; the package installs without it.

Why setuptools + CMake rather than scikit-build-core: the extension is optional. Where it
cannot be built (no C++ compiler, macOS, Arm, Python without headers, a failing compile),
``pip install`` must still succeed and srgan-mlx run on its pure-MLX path. A ``build_ext``
that catches the build's failure gives exactly that, for ``pip install .`` and for editable
installs (which build in place, so the files sit beside the sources); MLX's own extension
example builds the same way. The outcome, success or the reason for failure, is written to
``srgan_mlx/native/_build.json``, which ``srgan-mlx info`` reports.

The build-time inputs (``pyproject.toml``, ``[build-system]``, Linux x86_64 only): the headers
and CMake config of the pinned ``mlx-cpu`` wheel, ``onednn-devel-cpu-gomp``, nanobind 3.1
(the ABI mlx 0.32.4 was built with) and CMake/Ninja from PyPI.
"""

import base64
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
STATUS_FILE = "_build.json"
SGEMM_LIBRARY = "libsrgan_sgemm.so"


def _environment_variable(name: str) -> str:
    """A name from the package's registry of environment variables (``srgan_mlx/environment.py``, read by its path:
    the package itself cannot be imported while it is being built)."""
    spec = importlib.util.spec_from_file_location("srgan_mlx_environment", ROOT / "srgan_mlx" / "environment.py")
    registry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(registry)
    return getattr(registry, name)


DISABLE_ENV = _environment_variable("BUILD_ONEDNN")  # =0 skips the build


class BuildSkipped(Exception):
    """The extension is not built here, for a reason the user can act on; ``on_purpose``: because the user or the
    platform says so (``SRGAN_MLX_BUILD_ONEDNN=0``, not Linux x86_64), nothing to warn about."""

    def __init__(self, reason: str, on_purpose: bool = False):
        super().__init__(reason)
        self.on_purpose = on_purpose


def _tell(message: str) -> None:
    """A warning the user sees at install: pip shows a build's output only with ``-v`` or when it fails, so it also
    goes to the terminal itself (``/dev/tty``) where there is one; stderr keeps it in pip's log."""
    framed = "\n" + "=" * 100 + "\n" + message + "\n" + "=" * 100 + "\n"
    print(framed, file=sys.stderr, flush=True)
    try:
        with open("/dev/tty", "w") as terminal:
            terminal.write(framed)
    except OSError:
        pass  # no terminal (CI, a pipe): pip -v and the log show it, and srgan-mlx says it at every run


def _located(distribution: str, suffix: str) -> Path:
    """The installed file of ``distribution`` whose RECORD path ends with ``suffix``."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise BuildSkipped(f"build requirement {distribution} is not installed") from None
    for entry in dist.files or []:
        if entry.as_posix().endswith(suffix):
            return Path(dist.locate_file(entry)).resolve()
    raise BuildSkipped(f"{distribution} has no {suffix}")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        raise BuildSkipped(f"{distribution} is not installed in the build environment") from None


def _record_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _check_platform() -> None:
    if os.environ.get(DISABLE_ENV, "1") == "0":
        raise BuildSkipped(f"{DISABLE_ENV}=0", on_purpose=True)
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        raise BuildSkipped(f"built on Linux x86_64 only (this is {sys.platform} {platform.machine()})", on_purpose=True)
    if not (shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")):
        raise BuildSkipped("no C++ compiler found (Debian: apt-get install g++)")


class OptionalCMakeBuild(build_ext):
    """Runs CMake for ``srgan_mlx.native._ext``; any failure leaves the package pure-Python."""

    def build_extension(self, ext: Extension) -> None:
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        out_dir = target.parent
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in (target, out_dir / SGEMM_LIBRARY):  # an earlier build's, which a failure must not ship
            stale.unlink(missing_ok=True)
        try:
            status = self._cmake_build(out_dir)
        except BuildSkipped as exc:
            status = {"built": False, "reason": str(exc), "skipped": exc.on_purpose}
        except subprocess.CalledProcessError as exc:
            step = "configure" if "-S" in exc.cmd else "compile"
            lines = [line.strip() for line in (exc.output or "").splitlines() if line.strip()]
            first = next((i for i, line in enumerate(lines) if "error" in line.lower()), None)
            detail = "" if first is None else ": " + " ".join(lines[first : first + 3])[:300]
            status = {"built": False, "reason": f"CMake {step} failed (exit {exc.returncode}){detail}"}
        except OSError as exc:
            status = {"built": False, "reason": f"build failed: {exc}"}
        if not status["built"] and not status.get("skipped"):
            status["fix"] = self._fix(status["reason"])
            _tell(
                f"srgan-mlx: WARNING: the native extension was not built ({status['reason']}).\n"
                "srgan-mlx works without it, but upscaling and training on the CPU run about 50x slower.\n"
                f"Fix: {status['fix']}"
            )
        status.pop("skipped", None)
        (out_dir / STATUS_FILE).write_text(json.dumps(status, indent=1) + "\n")

    def _fix(self, reason: str) -> str:
        """The one command that builds the extension here: a C++ compiler where none was found, then this install
        again (the build log where the compile itself failed)."""
        editable = self.inplace or getattr(self, "editable_mode", False)
        again = f"pip install {'-e ' if editable else ''}{ROOT}" if (ROOT / ".git").exists() or editable else (
            "pip install --force-reinstall --no-deps srgan-mlx")
        if reason.startswith("no C++ compiler"):
            sudo = "" if os.geteuid() == 0 else "sudo "
            for tool, install in (("apt-get", "apt-get install -y g++"), ("dnf", "dnf install -y gcc-c++"),
                                  ("yum", "yum install -y gcc-c++"), ("zypper", "zypper install -y gcc-c++"),
                                  ("apk", "apk add g++"), ("pacman", "pacman -S --noconfirm gcc")):
                if shutil.which(tool):
                    return f"{sudo}{install} && {again}"
            return f"install a C++ compiler (g++ or clang++), then: {again}"
        if reason.startswith("CMake"):
            return f"{again} -v (the build log shows the error)"
        return again

    def _cmake_build(self, out_dir: Path) -> dict:
        _check_platform()
        try:
            import nanobind  # a build requirement on Linux x86_64
        except ImportError:
            raise BuildSkipped("build requirement nanobind is not installed") from None

        libmlx = _located("mlx-cpu", "mlx/lib/libmlx.so")
        build_temp = Path(self.build_temp).resolve() / "onednn"
        build_temp.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_temp), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DMLX_DIR={libmlx.parent.parent / 'share' / 'cmake' / 'MLX'}",
            f"-Ddnnl_DIR={_located('onednn-devel-cpu-gomp', 'cmake/dnnl/dnnl-config.cmake').parent}",
            f"-Dnanobind_DIR={nanobind.cmake_dir()}",
            f"-DOUTPUT_DIR={out_dir}",
        ]
        for command in (configure, ["cmake", "--build", str(build_temp)]):
            subprocess.run(command, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return {
            "built": True,
            "mlx_version": _version("mlx-cpu"),
            "libmlx_size": libmlx.stat().st_size,
            "libmlx_sha256": _record_hash(libmlx),
            "onednn_version": _version("onednn-cpu-gomp"),
        }

    def copy_extensions_to_source(self) -> None:
        """Editable installs: the sgemm library and the status file go beside the extension too."""
        super().copy_extensions_to_source()
        inplace_equivalent = getattr(self, "_get_inplace_equivalent", None)  # setuptools' own helper, not public API
        if inplace_equivalent is None:
            print("srgan-mlx: this setuptools cannot place the sgemm library for an editable install; the extension "
                  "will report itself unavailable (a regular `pip install .` is unaffected)")
            return
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace_file, regular_file = inplace_equivalent(build_py, ext)
            for name in (Path(regular_file).name, SGEMM_LIBRARY, STATUS_FILE):
                built, in_place = Path(regular_file).parent / name, Path(inplace_file).parent / name
                if built.exists():
                    self.copy_file(str(built), str(in_place), level=self.verbose)
                else:  # this build failed: no stale library of an earlier one stays in the source tree
                    in_place.unlink(missing_ok=True)


setup(
    ext_modules=[Extension("srgan_mlx.native._ext", sources=[], optional=True)],
    cmdclass={"build_ext": OptionalCMakeBuild},
)
