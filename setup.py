"""Build of the compiled parts: the C++ core ``pyfastnn._core`` and the Cython text kernels
``pyfastnn.text._bow``.

Every ``.cpp`` file under ``csrc/`` is compiled into one pybind11 extension with portable flags (no
``-march=native``): ISA-specific translation units raise their own target with ``#pragma GCC target`` and are
reached only through the runtime dispatch table, so one wheel runs on any x86-64 or arm64 CPU.

``pyfastnn/text/_bow.pyx`` is translated by Cython at build time (Cython is a build requirement only) and
compiled as C++.

If an extension cannot be built (no compiler, no Cython, or ``PYFASTNN_NO_EXTENSION=1``) the package still
installs, with a warning, and runs on its pure-Python fallbacks. ``PYFASTNN_REQUIRE_EXTENSION=1`` turns a
failed build into an error.
"""

import glob
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
except ImportError:  # only when building without build isolation and without pybind11
    ParallelCompile = Pybind11Extension = None

try:
    from Cython.Build import cythonize
except ImportError:  # only when building without build isolation and without Cython
    cythonize = None


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class OptionalBuildExt(build_ext):
    """Build the extension, but let a failure leave a working pure-Python install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, platform error, ...
            self._give_up(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._give_up(exc)

    def _give_up(self, exc):
        if _flag("PYFASTNN_REQUIRE_EXTENSION"):
            raise exc
        msg = (
            "\n" + "=" * 78 + "\n"
            "WARNING: a pyfastnn extension (the C++ core or the Cython text kernels) could not be built:\n"
            f"    {exc}\n"
            "pyfastnn is installed without it and will run on a slower backend.\n"
            "Set PYFASTNN_REQUIRE_EXTENSION=1 to make this an error.\n" + "=" * 78 + "\n"
        )
        sys.stderr.write(msg)


def _text_extensions():
    """The Cython text kernels; without Cython, [] and a warning (PYFASTNN_REQUIRE_EXTENSION: an error)."""
    if cythonize is None:
        msg = "Cython is not importable: building pyfastnn without its text kernels (pure-Python fallback)."
        if _flag("PYFASTNN_REQUIRE_EXTENSION"):
            raise RuntimeError(msg + " PYFASTNN_REQUIRE_EXTENSION is set.")
        sys.stderr.write("WARNING: " + msg + "\n")
        return []
    # -g0: Python's own CFLAGS often carry -g (they do on Debian and pyenv builds), which made this module 2.8 MB
    # of debug information in a wheel; pybind11 adds -g0 to the C++ core for the same reason.
    extra = ["/O2"] if sys.platform == "win32" else ["-O3", "-g0", "-fvisibility=hidden"]
    extra_link = []
    if _flag("PYFASTNN_SANITIZE"):
        extra = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
        extra_link = ["-fsanitize=address,undefined"]
    ext = Extension(
        "pyfastnn.text._bow",
        [os.path.join("pyfastnn", "text", "_bow.pyx")],
        language="c++",
        extra_compile_args=extra,
        extra_link_args=extra_link,
    )
    try:
        return cythonize([ext], compiler_directives={"language_level": 3}, quiet=True)
    except Exception as exc:  # a Cython error: like a compiler error, the fallback takes over
        if _flag("PYFASTNN_REQUIRE_EXTENSION"):
            raise
        sys.stderr.write(f"WARNING: Cython failed on pyfastnn/text/_bow.pyx ({exc}): pure-Python fallback.\n")
        return []


def _extensions():
    if _flag("PYFASTNN_NO_EXTENSION"):
        sys.stderr.write("PYFASTNN_NO_EXTENSION is set: building pyfastnn without its compiled extensions.\n")
        return []
    text = _text_extensions()
    if Pybind11Extension is None:
        sys.stderr.write("WARNING: pybind11 is not importable: building pyfastnn without its C++ extension.\n")
        return text
    sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    extra = ["-O3", "-fno-math-errno", "-fvisibility=hidden"]
    if sys.platform == "win32":
        extra = ["/O2"]
    extra_link = []
    if _flag("PYFASTNN_SANITIZE"):
        extra = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
        extra_link = ["-fsanitize=address,undefined"]
    return text + [
        Pybind11Extension(
            "pyfastnn._core",
            sources,
            include_dirs=["csrc"],
            cxx_std=17,
            extra_compile_args=extra,
            extra_link_args=extra_link,
            define_macros=[("PYFASTNN_VERSION", '"0.1.0"')],
        )
    ]


# The core is some twenty translation units at -O3: compile them on every core (PYFASTNN_BUILD_JOBS=N to
# choose; 1 for the old serial build), which about halves a build on two cores.
if ParallelCompile is not None:
    ParallelCompile("PYFASTNN_BUILD_JOBS").install()

setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
