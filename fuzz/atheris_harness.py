"""Coverage-guided fuzzing of spherecodec's decoders with atheris (libFuzzer for Python).

Usage (atheris is not a test dependency; ``pip install atheris`` first)::

    python fuzz/atheris_harness.py --write-seeds /tmp/sphc-seeds      # the corpus blobs
    python fuzz/atheris_harness.py /tmp/sphc-seeds -atheris_runs=100000 \\
        -max_len=65536 -timeout=20 -rss_limit_mb=4096

Each input is a blob. A custom mutator applies ``fuzz/mutate.py``'s structure-aware
mutations and most of the time re-seals the checksums, so that inputs get past the
container's checks into the codec decoders; libFuzzer's own byte mutations are mixed in.
An input fails when ``mutate.check_case`` does: an exception other than SpherecodecError,
or info/decode/decode_rows that disagree. libFuzzer itself catches segfaults (its signal
handler), hangs (``-timeout``) and memory blow-ups (``-rss_limit_mb``) and writes the
input to ``crash-*``/``timeout-*``/``oom-*`` files; replay one with
``python fuzz/atheris_harness.py <file>``.

The Python code of spherecodec is instrumented for coverage; the Numba kernels are not
(Numba cannot compile atheris' probes, and they are machine code), so guidance comes from
the Python-side checks around them.
"""

import importlib.util
import random
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

# the Numba kernels must stay uninstrumented (Numba cannot compile atheris' probes); the
# exclusion takes exact module names, listed from the files without importing the package
_PKG = Path(importlib.util.find_spec("spherecodec").submodule_search_locations[0])
_KERNELS = ["spherecodec.kernels"] + [f"spherecodec.kernels.{p.stem}" for p in (_PKG / "kernels").glob("*.py")]

with atheris.instrument_imports(include=["spherecodec"], exclude=_KERNELS):
    import spherecodec  # noqa: F401

import mutate  # noqa: E402

CORPUS = mutate.build_corpus(decode_reference=False)


def test_one_input(data):
    """Decode ``data`` as a blob; anything but a SpherecodecError or agreement is a failure."""
    entry = mutate.Entry("?", "atheris", b"", None)  # no reference: the blob may be anything
    rng = random.Random(len(data))
    mutate.check_case(entry, bytes(data), True, rng)


def custom_mutator(data, max_size, seed):
    """Structure-aware mutation of a blob (libFuzzer's byte mutation one time in five)."""
    rng = random.Random(seed)
    if rng.random() < 0.2:
        out = atheris.Mutate(data, max_size)
    else:
        base = bytes(data) if mutate.split(bytes(data)) is not None else rng.choice(CORPUS).blob
        entry = mutate.Entry("?", "atheris", base, None)
        out, _, _ = mutate.mutate_entry(CORPUS, entry, rng)
    return out[:max_size]


def main(argv):
    if len(argv) >= 3 and argv[1] == "--write-seeds":
        folder = Path(argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        for i, e in enumerate(CORPUS):
            (folder / f"{i:03d}-{e.codec}-{e.label}.sphc").write_bytes(e.blob)
        print(f"wrote {len(CORPUS)} seed blobs to {folder}")
        return
    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
