"""Every figure in docs/benchmarks.md is written by the script that measured it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks.md"
START = re.compile(r"^<!-- (\w+):start \(written by ([\w/.]+); edit the script, not this\) -->$")


def sections(text: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(name, script, body) of each generated section, and the lines outside every section."""
    found, outside, current = [], [], None
    for line in text.splitlines():
        m = START.match(line)
        if m and current is None:
            current = (m.group(1), m.group(2), [])
        elif current is not None and line == f"<!-- {current[0]}:end -->":
            found.append((current[0], current[1], "\n".join(current[2])))
            current = None
        elif current is not None:
            current[2].append(line)
        else:
            outside.append(line)
    assert current is None, f"section {current[0]} is not closed"
    return found, outside


def test_every_figure_in_benchmarks_md_is_in_a_generated_section():
    found, outside = sections(DOCS.read_text())
    assert found, "docs/benchmarks.md has no generated sections"
    hand_typed = [line for line in outside if re.search(r"\d", line)]
    assert not hand_typed, f"figures outside any generated section: {hand_typed}"


def test_each_generated_section_names_a_script_that_writes_it():
    found, _ = sections(DOCS.read_text())
    for name, script, body in found:
        path = ROOT / script
        assert path.is_file(), f"section {name}: {script} does not exist"
        source = path.read_text()
        assert f'"{name}"' in source, f"{script} does not write the {name} section"
        assert "Command:" in body and "Machine:" in body, f"section {name} lacks its command or machine line"
