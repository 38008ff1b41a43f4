"""setuptools hook: compile the kernels of a first encode and decode ahead of time.

Everything else about the package is in pyproject.toml. ``build_ext`` builds the extension
module ``spherecodec._kernels_aot`` (``src/spherecodec/aot_build.py``) for the CPU it runs on,
in a process of its own with an empty Numba cache. It takes about a minute of one core; a
build that fails (no C compiler, say) leaves the package as it was without it: its kernels
then compile at their first call, as before. ``SPHERECODEC_AOT=0`` skips it.
"""

import os
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src", "spherecodec")
# the package stubbed: aot_build needs only the kernels, aot and Numba, not the package's
# __init__ and the runtime dependencies it imports
_BUILD = """
import sys, types
package = types.ModuleType("spherecodec")
package.__path__ = [sys.argv[1]]
sys.modules["spherecodec"] = package
from spherecodec.aot_build import build
build(sys.argv[2])
"""


class BuildKernels(build_ext):
    """``build_ext`` whose one extension is compiled by ``spherecodec.aot_build``."""

    def build_extension(self, ext):
        target = os.path.abspath(self.get_ext_fullpath(ext.name))
        if os.environ.get("SPHERECODEC_AOT", "1") == "0":
            print("spherecodec: SPHERECODEC_AOT=0, kernels not compiled ahead of time", file=sys.stderr)
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="spherecodec-aot-") as cache:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}  # the host, as is
            env["NUMBA_CACHE_DIR"] = cache
            done = subprocess.run([sys.executable, "-c", _BUILD, _SOURCE, target], env=env,
                                  capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            print(f"spherecodec: kernels not compiled ahead of time (they compile at first use):\n{tail}",
                  file=sys.stderr)
            if os.path.exists(target):
                os.remove(target)


# optional: an extension that failed to build (or was skipped) is left out, not an error
setup(ext_modules=[Extension("spherecodec._kernels_aot", sources=[], optional=True)],
      cmdclass={"build_ext": BuildKernels})
