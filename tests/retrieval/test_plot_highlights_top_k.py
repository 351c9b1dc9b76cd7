"""`salova ask --plot` draws every segment's score and highlights exactly the top-K moments (README): checked on
the figure's bars and on the pixels of the PNG it wrote."""

from __future__ import annotations

import numpy as np
from matplotlib import colors as mcolors

from tests.cli_helpers import cli
from tests.retrieval.library import make_distinct_library


def test_plot_highlights_exactly_the_top_k_segments(capsys, monkeypatch, tmp_path, clip_dir):
    import matplotlib.image
    import matplotlib.pyplot as plt

    figures = []
    real_close = plt.close

    def keep_and_close(fig=None):
        figures.append(fig)
        real_close(fig)

    monkeypatch.setattr(plt, "close", keep_and_close)
    video = make_distinct_library(tmp_path / "v", n=1, scenes=6, seconds=2.0)[0]
    png = tmp_path / "scores.png"
    run = cli(capsys, "ask", video.path, "a red scene", "--index", tmp_path / "idx", "--encoder", clip_dir,
              "--device", "cpu", "--top-k", "3", "--plot", png, "--json")
    assert run.code == 0, run.err
    top = {m["segment"] for m in run.json()["moments"]}
    assert len(top) == 3

    (fig,) = figures
    (ax,) = fig.axes
    bars = sorted(ax.patches, key=lambda r: r.get_x())
    starts = [0.0, *(round(t, 6) for t in video.cut_times)]
    assert [round(b.get_x(), 6) for b in bars] == starts  # one bar per segment, at its start
    colours = [mcolors.to_hex(b.get_facecolor()) for b in bars]
    highlight = {colours[i] for i in top}
    plain = {colours[i] for i in range(6) if i not in top}
    assert len(highlight) == 1 and len(plain) == 1 and highlight != plain, colours
    (highlight_rgb,) = [np.array(mcolors.to_rgb(c)) for c in highlight]

    # the PNG on disk shows the same: the inside of each tall-enough bar has its colour
    image = matplotlib.image.imread(png)[..., :3]  # [H, W, 3] floats, row 0 at the top
    height = image.shape[0]
    checked = 0
    for i, bar in enumerate(bars):
        (x0, y0), (x1, y1) = ax.transData.transform([(bar.get_x(), bar.get_y()),
                                                     (bar.get_x() + bar.get_width(), bar.get_y() + bar.get_height())])
        if y1 - y0 < 6:
            continue  # the lowest score can be a bar of no height
        row = int(round(height - (y0 + y1) / 2))
        samples = [image[row, int(round(x0 + f * (x1 - x0)))] for f in (0.3, 0.5, 0.7)]
        is_highlight = [bool(np.abs(px - highlight_rgb).max() < 0.02) for px in samples]
        # the dotted at_s line may cross one sample of a top-K bar
        assert (sum(is_highlight) >= 2) if i in top else not any(is_highlight), (i, samples)
        checked += 1
    assert checked >= 5
