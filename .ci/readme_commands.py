"""Print the README's set-up commands, one per line, exactly as a user reads them.

They are the lines of the first ``bash`` code block under the heading "## Set up on a fresh
machine". CI runs what this prints, so the commands CI runs cannot drift from the README.
"""

import sys
from pathlib import Path

HEADING = "## Set up on a fresh machine"


def setup_commands(readme_text):
    """The non-empty lines of the first ```bash block after HEADING."""
    lines = readme_text.splitlines()
    try:
        start = lines.index(HEADING)
    except ValueError:
        raise SystemExit(f"README has no heading {HEADING!r}") from None
    fence = next((i for i in range(start, len(lines)) if lines[i].strip() == "```bash"), None)
    if fence is None:
        raise SystemExit(f"no ```bash block under {HEADING!r}")
    commands = []
    for line in lines[fence + 1:]:
        if line.strip() == "```":
            return commands
        if line.strip():
            commands.append(line)
    raise SystemExit("the ```bash block under the set-up heading is not closed")


if __name__ == "__main__":
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    for command in setup_commands(readme.read_text(encoding="utf-8")):
        print(command)
