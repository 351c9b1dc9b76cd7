"""Each metric against values worked out by hand."""

from __future__ import annotations

import pytest

from salova.eval.metrics import (
    accuracy_by,
    exact_match,
    extract_choice,
    grounding_metrics,
    grounding_query_metrics,
    hit_at_k,
    option_text,
    temporal_iou,
)
from salova.eval.records import ResultLog, format_table


def test_temporal_iou_by_hand():
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((2, 4), (0, 10)) == pytest.approx(2 / 10)
    assert temporal_iou((0, 10), (10, 20)) == 0.0  # touching is not overlapping
    assert temporal_iou((3, 3), (0, 10)) == 0.0


def test_grounding_metrics_by_hand():
    q1 = grounding_query_metrics([(0, 10), (5, 15), (20, 30)], [(5, 15)])  # IoUs 1/3, 1, 0
    assert q1 == {"R1@0.3": 1.0, "R1@0.5": 0.0, "R1@0.7": 0.0, "R5@0.3": 1.0, "R5@0.5": 1.0, "R5@0.7": 1.0,
                  "IoU": pytest.approx(1 / 3), "hit@1": 1.0}
    q2 = grounding_query_metrics([(20, 30)], [(0, 4), (18, 26)])  # best truth window: 6 / 12
    assert q2["IoU"] == pytest.approx(0.5) and q2["R1@0.5"] == 1.0 and q2["R1@0.7"] == 0.0 and q2["hit@1"] == 1.0
    q3 = grounding_query_metrics([(0, 2), (3, 4)], [(10, 12)])
    assert q3["hit@1"] == 0.0 and q3["IoU"] == 0.0 and q3["R5@0.3"] == 0.0
    m = grounding_metrics([q1, q2, q3])
    assert m == pytest.approx({"R1@0.3": 2 / 3, "R1@0.5": 1 / 3, "R1@0.7": 0.0, "R5@0.3": 2 / 3, "R5@0.5": 2 / 3,
                               "R5@0.7": 1 / 3, "mIoU": (1 / 3 + 0.5) / 3, "hit@1": 2 / 3})
    assert list(m)[-2:] == ["mIoU", "hit@1"]


def test_hit_at_k():
    assert hit_at_k([3, 1, 2], [1], 1) == 0.0
    assert hit_at_k([3, 1, 2], [1], 2) == 1.0
    assert hit_at_k([3, 1, 2], [4, 2], 5) == 1.0
    assert hit_at_k([], [0], 1) == 0.0


def test_exact_match_normalises_case_punctuation_and_articles():
    assert exact_match("Red.", "red") == 1.0
    assert exact_match("The  red", "red") == 1.0
    assert exact_match("red and blue", "red") == 0.0
    assert exact_match(None, "red") == 0.0


OPTIONS = ["a red car", "a blue bus", "two dogs", "nothing"]


@pytest.mark.parametrize(("reply", "letter"), [
    ("B", "B"), ("B.", "B"), ("(C) two dogs", "C"), ("The answer is D.", "D"), ("Answer: (A)", "A"),
    ("Best answer: B", "B"), ("b", "B"), ("the blue bus", "B"), ("I think it's C.", "C"),
    ("**D**", "D"), ("A dog runs", None), ("E", None), ("", None), (None, None), ("it is B or C", None),
])
def test_extract_choice(reply, letter):
    assert extract_choice(reply, OPTIONS) == letter


def test_option_text_drops_the_letter():
    assert option_text("B. a red car") == "a red car"
    assert option_text("(C) two dogs") == "two dogs"
    assert option_text("A dog") == "A dog"


def test_accuracy_by_group():
    records = [{"correct": True, "d": "short"}, {"correct": False, "d": "short"}, {"correct": True, "d": "long"},
               {"correct": True, "d": ""}]
    assert accuracy_by(records, "d") == {"long": {"n": 1, "accuracy": 1.0}, "short": {"n": 2, "accuracy": 0.5}}


def test_result_log_resumes_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultLog(path, "id", resume=False) as log:
        log.add({"id": 1, "x": 1.0})
        log.add({"id": 2, "x": 2.0})
    path.write_text(path.read_text() + '{"id": 3, "x"')  # killed mid-write
    with ResultLog(path, "id", resume=True) as log:
        assert 1 in log and 2 in log and 3 not in log
        log.add({"id": 3, "x": 3.0})
    assert [line.count('"id"') for line in path.read_text().splitlines()] == [1, 1, 1]
    with ResultLog(path, "id", resume=False) as log:
        assert not log.done


def test_format_table():
    assert format_table(["a", "bb"], [["x", 0.5]]).splitlines() == ["a  bb   ", "-  -----", "x  0.500"]
