"""The report's context-scaling section, fed by a `nevermind perplexity` output directory holding
the numbers measured on SmolLM2 (docs/context-scaling/): ratios to the baseline with their SEs."""

import json
import shutil
from pathlib import Path

import pytest

from nevermind.errors import NevermindError
from nevermind.report import write_report

MEASURED = Path(__file__).parents[2] / "docs" / "context-scaling"


@pytest.fixture
def perplexity_dir(tmp_path):
    out = tmp_path / "ppl"
    out.mkdir()
    shutil.copy(MEASURED / "smollm2-ntk-512.json", out / "perplexity.json")
    shutil.copy(MEASURED / "smollm2-ntk-512-buffer.json", out / "buffer.json")
    return out


def test_report_shows_cliffs_and_buffer(perplexity_dir, tmp_path):
    html = write_report([perplexity_dir], tmp_path / "report.html").read_text()
    measured = json.loads((perplexity_dir / "perplexity.json").read_text())
    assert 'id="context-scaling"' in html
    assert "Instruction following inside the cliff" in html
    assert html.count("data:image/png;base64,") >= 2  # the perplexity curves and the buffer plot
    for curve in measured["curves"]:
        assert f"<td>{curve['alpha']:g}</td><td>{curve['cliff'] or 'none'}</td>" in html
        for ratio, se, same in zip(curve["ratio"], curve["ratio_log_se"], curve["same_context"]):
            assert same or f"{ratio:.2f} ± {ratio * se:.2f}" in html  # every ratio with its SE
    assert "position-matched baseline" in html


def test_model_name_is_escaped(perplexity_dir, tmp_path):
    data = json.loads((perplexity_dir / "perplexity.json").read_text())
    data["config"]["model"] = "<script>alert(1)</script>"
    (perplexity_dir / "perplexity.json").write_text(json.dumps(data))
    html = write_report([perplexity_dir], tmp_path / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_unreadable_result_is_one_line_error(perplexity_dir, tmp_path):
    (perplexity_dir / "perplexity.json").write_text('{"config": {}}')
    with pytest.raises(NevermindError, match="not a readable perplexity result"):
        write_report([perplexity_dir], tmp_path / "report.html")
