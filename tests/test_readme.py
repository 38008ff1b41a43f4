"""The README's set-up commands are what CI runs, and the README says one test command."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands_module():
    spec = importlib.util.spec_from_file_location("readme_commands", ROOT / ".ci" / "readme_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readmes_two_setup_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = _readme_commands_module().setup_commands(readme)
    assert len(commands) == 2
    install_and_bench, install_and_test = commands
    assert "pip install -e ." in install_and_bench and "spherecodec bench --sample" in install_and_bench
    assert '".[test]"' in install_and_test and "python -m pytest tests" in install_and_test
    # the tests need torch: the command pins the CPU build instead of letting pip choose a CUDA one
    assert "torch==" in install_and_test
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_commands.py README.md" in ci
    # the "Tests" section shows the same test command, not another one
    tests_section = readme[readme.index("\n## Tests"):]
    assert _code_blocks(tests_section)[0].strip() == install_and_test.split("#")[0].strip()


def test_setup_commands_are_read_from_the_first_bash_block_under_the_heading():
    module = _readme_commands_module()
    text = ("# x\n```bash\nnot this\n```\n## Set up on a fresh machine\n\ntext\n"
            "```bash\none && two   # comment\n\nthree\n```\n```bash\nlater\n```\n")
    assert module.setup_commands(text) == ["one && two   # comment", "three"]
    with pytest.raises(SystemExit, match="no heading"):
        module.setup_commands("## Other\n```bash\nx\n```\n")
    with pytest.raises(SystemExit, match="not closed"):
        module.setup_commands("## Set up on a fresh machine\n```bash\nx\n")
