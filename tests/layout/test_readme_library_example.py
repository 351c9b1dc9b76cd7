"""The README's "Library" example runs as written, with only the model and the video folder swapped for local ones."""

from __future__ import annotations

import re
from pathlib import Path

from salova.testing.videos import make_video
from salova.tiny import make_tiny_encoder

ROOT = Path(__file__).resolve().parents[2]


def library_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Library\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_library_example_indexes_asks_and_searches(tmp_path, monkeypatch, capsys):
    videos = tmp_path / "videos"
    make_video(videos / "lecture.mp4", [(2.0, (220, 30, 30)), (2.0, "noise"), (2.0, (30, 30, 220))], fps=10)
    encoder = make_tiny_encoder(tmp_path / "clip", "clip")
    code = library_example()
    assert "openai/clip-vit-large-patch14-336" in code and "~/videos" in code
    code = code.replace("openai/clip-vit-large-patch14-336", str(encoder)).replace("~/videos", str(videos))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md#Library", "exec"), scope)
    printed = capsys.readouterr().out.splitlines()
    assert 3 <= len(printed) <= 5  # one line per moment (top 5): the video has three scenes, cut in 3 or more segments
    assert all(len(line.split()) == 5 for line in printed), printed  # rank start end at score
    assert scope["hits"] and all(h.video.endswith("lecture.mp4") for h in scope["hits"])
