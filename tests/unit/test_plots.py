"""The evaluation plots say what they are and draw what they claim."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.results.plots import fitted_unit_range, zero_aligned_bins
from tests.unit.evalruns import make_run, margin_texts


@pytest.mark.parametrize(
    "values",
    [
        [-7.3, -0.2, 0.4, 12.9],
        [0.3, 0.9, 4.1],
        [-5.0, -0.01],
        [-1e-3, 2e-3],
        [0.0, 0.0],
        [3.0],
        [-2.5, 0.0, 2.5],
    ],
)
def test_no_histogram_bin_straddles_the_decision_line(values):
    values = np.array(values)
    edges = zero_aligned_bins(values, 20)
    assert np.isclose(edges, 0.0, atol=1e-12 * max(1.0, np.abs(edges).max())).any(), edges
    assert edges[0] <= values.min() and edges[-1] >= values.max()
    widths = np.diff(edges)
    assert np.allclose(widths, widths[0]) and len(edges) - 1 <= 20 + 2
    straddling = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if a < 0 < b]
    assert not straddling


def test_accuracy_axis_fits_the_data_but_stays_in_0_1():
    lo, hi = fitted_unit_range([0.93, 0.97, 0.95])
    assert 0.5 < lo < 0.93 and 0.97 < hi <= 1.0
    lo, hi = fitted_unit_range([0.2, 1.0])
    assert 0.0 <= lo < 0.2 and hi == 1.0
    assert fitted_unit_range([]) == (0.0, 1.0)


def test_every_png_names_its_run_experiment_and_kind(tmp_path):
    from PIL import Image

    from orchestrator.results.evaluate import evaluate_run

    texts = margin_texts({"0": [-5, -4, -3, -6, 2, -1, -2, -8], "1": [5, 4, 3, -1, -2, 6, 7, 1]})
    run_dir = make_run(tmp_path, "plotted-run", texts, kind="mdlm", init="scratch")
    evaluate_run(run_dir, plots=True)
    pngs = sorted((run_dir / "plots").glob("*.png"))
    assert len(pngs) == 4
    for png in pngs:
        title = Image.open(png).text.get("Title", "")
        assert "run plotted-run" in title and "experiment exp" in title and "mdlm (init scratch)" in title, (png, title)


def test_the_heading_is_drawn_on_the_figure(tmp_path, monkeypatch):
    """The label is on the picture itself (a suptitle), not only in the file's metadata."""
    from matplotlib.figure import Figure

    from orchestrator.results.evaluate import evaluate_run

    drawn = []
    original = Figure.savefig

    def spy(fig, *args, **kwargs):
        drawn.append(fig.get_suptitle())
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    evaluate_run(make_run(tmp_path, "headed"), plots=True)
    assert len(drawn) == 4 and all(t == "run headed · experiment exp · ar (init scratch)" for t in drawn), drawn
