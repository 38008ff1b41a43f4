"""Every ```python and ```bash block of README.md and docs/*.md runs, and prints what it says.

How a block runs (each in a fresh temporary directory):

* python: ``exec`` in a fresh namespace holding ``np``, ``spherecodec`` and ``x`` (the first
  ``ROWS`` rows of the bundled sample), beside the files ``DATA_FILES`` names (small arrays
  cut from the bundled sample, a parquet table, a saved DIVE adapter). A line ``print(EXPR)  # VALUE`` with a
  number as VALUE is a claim: the printed number, rounded to VALUE's decimals, must equal it.
* bash: every command line (``\\`` continuations joined, ``#`` comments dropped) must be a
  ``spherecodec ...``, ``python -m spherecodec ...`` or ``python -m spherecodec.MODULE ...``
  command; it runs with this interpreter and must exit 0.
* ``SUBSTITUTIONS`` lists the few edits that keep CI fast (fewer training epochs, fewer rows
  in the bench); nothing else in a block is changed.

A block that cannot run here says so in the doc with ``<!-- not run: why -->`` on the line
before its fence; every other block is a test case below. Plain ``` fences (layouts,
diagrams) are not code.
"""

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec.datasets import load_sample
from spherecodec.dive import DiveAdapter

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ROWS = 1000
BLOCK = re.compile(r"^```(python|bash)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(\S[^>]*?)\s*-->\s*$")
CLAIM = re.compile(r"^(\s*)print\((.*)\)\s*#\s*(-?\d+(?:\.\d+)?)\s*$")

#: (doc, text in a block) -> replacement: what is cut to keep the suite fast
SUBSTITUTIONS = {
    ("dive.md", "DiveAdapter(384, 96).fit(x)"): "DiveAdapter(384, 96, hidden=64).fit(x, epochs=1, steps_per_epoch=2)",
    ("integrations.md", "spherecodec bench --sample"): "spherecodec bench --sample --rows 300 --repeats 1 --codecs int8",
    ("README.md", "python -m spherecodec.warmup  "): "python -m spherecodec.warmup --codecs exact --processes 1  ",
}


def _blocks():
    """``(doc name, line, language, code, not-run reason or None)`` of every fenced block."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = NOT_RUN.search(before)
            found.append((path.name, text[:m.start()].count("\n") + 1, m.group(1), m.group(2),
                          marker.group(1) if marker else None))
    return found


BLOCKS = _blocks()
RUNNABLE = [b for b in BLOCKS if b[4] is None]


def _substituted(doc, code):
    for (where, old), new in SUBSTITUTIONS.items():
        if where == doc and old in code:
            code = code.replace(old, new)
    return code


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    """The files the blocks read, made once: small cuts of the bundled sample."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("doc-data")
    sample = load_sample()
    np.save(root / "embeddings.npy", sample[:ROWS])
    np.save(root / "vectors.npy", sample[:ROWS])
    np.save(root / "more_embeddings.npy", sample[ROWS:ROWS + 500])
    np.save(root / "queries.npy", sample[-50:])
    table = pa.table({"id": np.arange(ROWS), "text": [f"sentence {i}" for i in range(ROWS)],
                      "embedding": pa.FixedSizeListArray.from_arrays(pa.array(sample[:ROWS].ravel()), 384)})
    pq.write_table(table, root / "docs.parquet", row_group_size=400)
    DiveAdapter(384, 96, hidden=64).save(root / "adapter.npz")  # unfitted: PCA-free start, any weights do
    (root / "dataset_dir").mkdir()
    pq.write_table(table.slice(0, 300), root / "dataset_dir" / "part-0.parquet")
    return root


def _workdir(tmp_path, data_files):
    for f in data_files.iterdir():
        (tmp_path / f.name).symlink_to(f)
    return tmp_path


def _run_python(code, name):
    claims = []

    def claim(value, expected):
        print(value)
        claims.append((value, expected))

    lines = []
    for line in code.splitlines():
        m = CLAIM.match(line)
        lines.append(f"{m.group(1)}_claim({m.group(2)}, {m.group(3)!r})" if m else line)
    namespace = {"__name__": "__doc_block__", "np": np, "spherecodec": spherecodec,
                 "x": load_sample()[:ROWS], "_claim": claim}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n".join(lines), name, "exec"), namespace)
    for value, expected in claims:
        decimals = len(expected.partition(".")[2])
        assert round(float(value), decimals) == float(expected), (name, value, expected)
    return out.getvalue()


def _commands(code):
    joined = code.replace("\\\n", " ")
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            yield words


def _run_bash(code, name, cwd):
    for words in _commands(code):
        if words[0] == "spherecodec":
            args = words[1:]
        elif words[:3] == ["python", "-m", "spherecodec"]:
            args = words[3:]
        elif words[:2] == ["python", "-m"] and words[2].startswith("spherecodec."):  # a module's command
            done = subprocess.run([sys.executable, "-m", *words[2:]], cwd=cwd, capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, (name, words, done.stderr)
            continue
        else:
            raise AssertionError(f"{name}: {' '.join(words)!r} is not a spherecodec command; "
                                 "mark the block <!-- not run: why -->")
        done = subprocess.run([sys.executable, "-m", "spherecodec", *args], cwd=cwd, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, (name, words, done.stderr)


@pytest.mark.parametrize("doc,line,language,code,reason", RUNNABLE,
                         ids=[f"{b[0]}:{b[1]}" for b in RUNNABLE])
def test_block_runs(doc, line, language, code, reason, tmp_path, data_files, monkeypatch):
    cwd = _workdir(tmp_path, data_files)
    monkeypatch.chdir(cwd)
    code = _substituted(doc, code)
    if language == "python":
        _run_python(code, f"{doc}:{line}")
    else:
        _run_bash(code, f"{doc}:{line}", cwd)


def test_only_marked_blocks_are_left_out_and_each_says_why():
    left_out = [b for b in BLOCKS if b[4] is not None]
    assert len(RUNNABLE) >= 15 and len(left_out) <= 8, [(b[0], b[1]) for b in left_out]
    for doc, line, _, _, reason in left_out:
        assert len(reason) > 10, (doc, line, reason)
    # every substitution still finds its text: a doc edit cannot silently bypass it
    for (doc, old) in SUBSTITUTIONS:
        assert any(b[0] == doc and old in b[3] for b in RUNNABLE), (doc, old)


def test_the_runner_checks_claims_and_refuses_other_commands(tmp_path):
    assert _run_python("print(1.2049)  # 1.205", "t").strip() == "1.2049"
    with pytest.raises(AssertionError):
        _run_python("print(1.21)  # 1.205", "t")
    with pytest.raises(AssertionError, match="not a spherecodec command"):
        _run_bash("rm -rf /tmp/nothing", "t", tmp_path)
    assert [b for b in _blocks() if b[2] not in ("python", "bash")] == []
