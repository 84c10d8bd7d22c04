"""Build step: setuptools drives CMake to build tessera._core (pybind11 + LibTorch).

scikit-build-core is not available from Debian, so this follows pybind11's
cmake_example: a CMakeExtension whose build_ext runs cmake (Ninja, ccache).
TESSERA_CMAKE_BUILD_DIR picks the CMake build directory (the Makefile uses build/
so that later `cmake --build build` rebuilds the editable install in place);
TESSERA_CMAKE_ARGS adds arguments; TESSERA_BUILD_TESTS=0 skips the C++ tests.

Editable installs: setuptools may build the extension into a temporary build_lib
and copy it into the tree afterwards. CMake would remember that temporary directory
as the module's output and every later `cmake --build` would write the module
where nobody imports it; so an editable (or in-place) build makes CMake write into
python/tessera/ itself and hands setuptools a copy.
"""
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        extdir = target.parent
        in_tree = self.inplace or getattr(self, "editable_mode", False)
        outdir = ROOT / "python" / "tessera" if in_tree else extdir
        build_dir = Path(os.environ.get("TESSERA_CMAKE_BUILD_DIR", self.build_temp)).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        tests = os.environ.get("TESSERA_BUILD_TESTS", "0")
        args = [
            f"-DTESSERA_PYTHON_OUTPUT_DIR={outdir}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DTESSERA_BUILD_TESTS={'ON' if tests == '1' else 'OFF'}",
            "-G", "Ninja",
        ]
        args += shlex.split(os.environ.get("TESSERA_CMAKE_ARGS", ""))
        # ccache: relative paths, so builds of other checkouts/build dirs share the cache
        os.environ.setdefault("CCACHE_BASEDIR", str(ROOT))
        os.environ.setdefault("CCACHE_NOHASHDIR", "1")
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *args], check=True)
        jobs = os.environ.get("TESSERA_JOBS", "2")
        subprocess.run(["cmake", "--build", str(build_dir), "-j", jobs], check=True)
        if outdir != extdir:
            extdir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(outdir / target.name, target)


def read_version() -> str:
    """The release, from cpp/include/tessera/core/version.h (its one place)."""
    import re
    text = (ROOT / "cpp" / "include" / "tessera" / "core" / "version.h").read_text()
    return re.search(r'^#define TESSERA_VERSION_STRING "([0-9.]+)"$', text, re.M).group(1)


setup(version=read_version(), ext_modules=[CMakeExtension("tessera._core")], cmdclass={"build_ext": CMakeBuild})
