"""The buffer experiment's plumbing on a tiny model: every (task, alpha, length) scored, distances
from the cliff, and an HTML section that escapes what it shows."""

import math

from nevermind.perplexity import AlphaCurve, PerplexityConfig, PerplexityResult
from nevermind.perplexity.buffer import BufferPoint, buffer_section_html, run_buffer


def test_buffer_on_tiny_llama(tiny_llama_dir):
    config = PerplexityConfig(model=str(tiny_llama_dir), alphas=(1.0, 4.0), lengths=(96, 192), device="cpu")
    result = PerplexityResult(
        config=config, trained_positions=2048, declared_positions=2048, text_tokens=0,
        curves=[AlphaCurve(1.0, "none", [10.0, 30.0], 192), AlphaCurve(4.0, "ntk:4", [10.0, 11.0], None)],
    )
    points = run_buffer(result, per_length=1)
    assert {(p.task, p.alpha, p.length) for p in points} == {
        (t, a, n) for t in ("needle", "override") for a in (1.0, 4.0) for n in (96, 192)
    }
    assert all(0.0 <= p.accuracy <= 1.0 and p.samples == 1 for p in points)
    by_key = {(p.task, p.alpha, p.length): p for p in points}
    assert by_key[("needle", 1.0, 96)].distance == -0.5 and by_key[("needle", 1.0, 192)].distance == 0.0
    assert by_key[("override", 4.0, 96)].cliff is None


def test_section_escapes_and_embeds_the_plot():
    points = [BufferPoint("<script>", 1.0, 512, 0.5, 0.1, 4, 1024, -0.5),
              BufferPoint("<script>", 2.0, 512, 1.0, math.nan, 1, None, -0.75)]
    html = str(buffer_section_html(points))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "data:image/png;base64," in html
