"""The lmms-eval model: found through the ``lmms_eval.models`` entry point; its requests answered on the same path
as ``salova eval mcq`` (lmms-eval itself is not installed by default: the class is tested through its logic, and
the registry check runs only where lmms-eval is installed)."""

from __future__ import annotations

from importlib.metadata import entry_points
from types import SimpleNamespace

import pytest

from salova.eval.lmms_model import SalovaEvalModel, manifest, split_options
from salova.eval.mcq import answer_zero_shot
from salova.testing.videos import make_video
from tests.eval.conftest import COLOURS, SIZE

CONTEXT = "a plain screen\nA. red\nB. green\nC. blue\nD. white\nAnswer with the option's letter from the given " \
          "choices directly."


def test_entry_point_names_the_manifest():
    eps = [ep for ep in entry_points(group="lmms_eval.models") if ep.name == "salova"]
    assert len(eps) == 1 and eps[0].value == "salova.eval.lmms_model:manifest"
    assert eps[0].load() is manifest  # loading it does not need lmms-eval; calling it does


def test_split_options():
    assert split_options(CONTEXT) == ("a plain screen", ["red", "green", "blue", "white"])
    assert split_options("when is the dog?") == ("when is the dog?", [])
    assert split_options("Q\n(A) x\n(B) y")[1] == ["x", "y"]


@pytest.fixture(scope="module")
def lmm(tmp_path_factory, clip_dir, zero_shot):
    root = tmp_path_factory.mktemp("lmms")
    needle, others = zero_shot.separable("a plain screen")
    video = make_video(root / "v.mp4", [(3.0, COLOURS[c]) for c in (others[0], needle, others[1])], fps=10,
                       size=SIZE).path
    model = SalovaEvalModel(encoder=str(clip_dir), index=str(root / "idx"), device="cpu", batch_size=1)
    docs = [{"video": str(video), "options": ["red", "green", "blue", "white"]}]
    model.task_dict = {"videomme": {"test": docs}}
    return model, video


def request(*args):
    return SimpleNamespace(args=args)


def test_generate_until_answers_a_letter_or_a_moment(lmm):
    model, video = lmm
    visual = lambda doc: [doc["video"]]  # noqa: E731
    letter, _ = answer_zero_shot(model.session, video, "a plain screen", ["red", "green", "blue", "white"])
    out = model.generate_until([request(CONTEXT, {"until": ["\n"]}, visual, 0, "videomme", "test"),
                                request("a plain screen", {}, visual, 0, "videomme", "test")])
    assert out[0] == letter
    start, end = (float(x) for x in out[1].split("-"))
    assert end - start == pytest.approx(3.0) and start in (0.0, 3.0, 6.0)


def test_loglikelihood_ranks_the_options_like_the_rule(lmm):
    model, video = lmm
    visual = lambda doc: [doc["video"]]  # noqa: E731
    options = ["red", "green", "blue", "white"]
    letter, scores = answer_zero_shot(model.session, video, "a plain screen", options)
    out = model.loglikelihood([request(CONTEXT, o, visual, 0, "videomme", "test") for o in options])
    assert [s for s, _ in out] == pytest.approx(scores)
    assert not any(greedy for _, greedy in out)
    assert "ABCD"[max(range(4), key=lambda i: out[i][0])] == letter


def test_registered_in_lmms_eval():
    pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (pip install lmms-eval)")
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    registry = ModelRegistryV2()
    registry.load_entrypoint_manifests()
    assert registry.get_manifest("salova").simple_class_path == "salova.eval.lmms_plugin.SalovaLMM"
    from salova.eval.lmms_plugin import SalovaLMM

    assert SalovaLMM.is_simple
