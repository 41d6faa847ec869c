"""The buffer experiment's plumbing on a tiny model, through the model interface: every (task, alpha,
length) scored, distances from the cliff, resumable records, and an HTML section that escapes what it shows."""

import json
import math

from nevermind.perplexity import AlphaCurve, PerplexityConfig, PerplexityResult, buffer_to_dir, run_buffer
from nevermind.perplexity.buffer import BufferPoint, buffer_points
from nevermind.progress import RecordedProgress
from nevermind.report.context_scaling import buffer_section_html


def _result(model: str) -> PerplexityResult:
    config = PerplexityConfig(model=model, alphas=(1.0, 4.0), lengths=(96, 192), device="cpu", cliff_ratio=2.0)
    return PerplexityResult(
        config=config, trained_positions=2048, declared_positions=2048, baseline_context=64, text_tokens=0,
        curves=[AlphaCurve(1.0, "none", [10.0, 30.0], [10.0, 10.0], [1.0, 3.0], [0.0, 0.1], [True, False], 192),
                AlphaCurve(4.0, "ntk:4", [10.0, 11.0], [10.0, 10.5], [1.0, 1.05], [0.0, 0.1], [True, False], None)],
    )  # fmt: skip


def test_buffer_on_tiny_llama(tiny_llama_dir):
    points = run_buffer(_result(str(tiny_llama_dir)), per_length=1)
    assert {(p.task, p.alpha, p.length) for p in points} == {
        (t, a, n) for t in ("needle", "override") for a in (1.0, 4.0) for n in (96, 192)
    }
    assert all(0.0 <= p.accuracy <= 1.0 and p.samples == 1 and math.isnan(p.stderr) for p in points)
    by_key = {(p.task, p.alpha, p.length): p for p in points}
    assert by_key[("needle", 1.0, 96)].distance == -0.5 and by_key[("needle", 1.0, 192)].distance == 0.0
    assert by_key[("override", 4.0, 96)].cliff is None


def test_buffer_resumes_from_its_records(tiny_llama_dir, tmp_path):
    result = _result(str(tiny_llama_dir))
    (tmp_path / "perplexity.json").write_text(json.dumps(result.to_dict()))
    first = buffer_to_dir(result, tmp_path, per_length=1, alphas=[1.0], tasks=["override"])
    records = (tmp_path / "buffer.records.jsonl").read_text().splitlines()
    assert len(records) == 2 and (tmp_path / "context-scaling.html").is_file()
    (tmp_path / "buffer.records.jsonl").write_text(records[0] + "\n")
    progress = RecordedProgress()
    again = buffer_to_dir(result, tmp_path, per_length=1, alphas=[1.0], tasks=["override"], progress=progress)
    assert progress.items == 1 and again == first  # only the lost sample was generated again


def test_points_carry_the_se_of_their_samples():
    result = _result("x")
    scores = {("needle", 1.0, 96, f"s{i}"): v for i, v in enumerate([1.0, 0.0, 1.0, 1.0])}
    [point] = buffer_points(result, scores, tasks=["needle"], lengths=[96], alphas=[1.0])
    assert point.accuracy == 0.75 and point.stderr == math.sqrt(0.25 / 4) and point.samples == 4


def test_section_escapes_and_embeds_the_plot():
    points = [BufferPoint("<script>", 1.0, 512, 0.5, 0.1, 4, 1024, -0.5),
              BufferPoint("<script>", 2.0, 512, 1.0, math.nan, 1, None, -0.75)]
    html = str(buffer_section_html(points, _result("x")))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "data:image/png;base64," in html
