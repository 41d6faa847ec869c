"""The HTML report: one self-contained file, models side by side, every untrusted string escaped,
and checked in a real headless Chromium (a planted <script> must not run)."""

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from markupsafe import Markup

from nevermind.errors import NevermindError
from nevermind.report import SECTIONS, build_report, load_runs, register_section, render, write_report
from nevermind.runs.config import RunSpec
from nevermind.runs.index import RunIndex
from nevermind.runs.store import RunDir, SampleRecord
from nevermind.scoring.stats import mean_and_se

TITLE = "nevermind report"
PAYLOADS = {
    "output": "<script>document.title='pwned-output'</script>",
    "explanation": "<img src=x onerror=\"document.title='pwned-img'\">",
    "prompt": "</pre></td></tr></table><script>document.title='pwned-prompt'</script>",
    "metadata": "<svg onload=\"document.title='pwned-svg'\"></svg>",
}


def make_run(out, model, values, *, xss=False, grid=True):
    """A run directory written through the store, as the runner writes it."""
    spec = RunSpec(model=model, tasks=["needle", "jailbreak"])
    run = RunDir.create(out, spec)
    records = []
    for i, value in enumerate(values):
        records.append(SampleRecord(
            task="needle", id=f"needle-{i}",
            messages=[{"role": "user", "content": (PAYLOADS["prompt"] if xss else "") + f"haystack {i}"}],
            output=PAYLOADS["output"] if xss else f"answer {i}", value=value,
            explanation=PAYLOADS["explanation"] if xss else "found",
            matches={"answer": ["<b>x</b>"] if xss else []},
            metadata={"length": [100, 200][i % 2], "depth": [0, 100][i // 2 % 2], "note": PAYLOADS["metadata"]}
            if grid else {},
        ))
        records.append(SampleRecord(task="jailbreak", id=f"jb-{i}", messages=[{"role": "user", "content": "q"}],
                                    output="no", value=1 - value, explanation="rule held",
                                    extra={"rule_holds": 1 - value, "obeyed_newest": value}))
    run.append(records)
    run.update_meta(status="finished", attempts=1)
    RunIndex(out).start(spec, run.path, attempts=1, started="2026-01-01T00:00:00+00:00", n_samples=len(records))
    return run


def test_scores_side_by_side_with_standard_errors(tmp_path):
    make_run(tmp_path, "smollm2-135m-instruct", [1, 1, 0, 1])
    make_run(tmp_path, "gemma-3-270m", [0, 0, 1, 0])
    html = build_report(load_runs([tmp_path]))  # an output directory: every run in its index
    header = re.search(r"<tr><th>task</th><th>metric</th>(.*?)</tr>", html).group(1)
    assert "smollm2-135m-instruct" in header and "gemma-3-270m" in header
    mean, se = mean_and_se([1, 1, 0, 1])
    assert f"{mean:.3f} ± {se:.3f}" in html
    mean, se = mean_and_se([0, 0, 1, 0])
    assert f"{mean:.3f} ± {se:.3f}" in html
    assert "<td>jailbreak</td><td>rule_holds</td>" in html and "<td>jailbreak</td><td>obeyed_newest</td>" in html
    assert html.count('<img class="plot"') == 2  # the bar chart and the needle heatmaps
    assert html.count("<details class=\"task\">") == 4  # 2 models × 2 tasks


def test_no_heatmap_without_grid(tmp_path):
    run = make_run(tmp_path, "m", [1, 0], grid=False)
    html = build_report(load_runs([run.path]))
    assert "Needle heatmaps" not in html and html.count('<img class="plot"') == 1


def test_self_contained_and_escaped(tmp_path):
    run = make_run(tmp_path, "<b>model</b>", [1, 0, 0, 1], xss=True)
    html = build_report(load_runs([run.path]))
    assert "<script" not in html.lower() and "onerror=\"" not in html and "<svg" not in html
    assert "&lt;script&gt;document.title=&#39;pwned-output&#39;&lt;/script&gt;" in html
    assert "<b>model</b>" not in html and "&lt;b&gt;model&lt;/b&gt;" in html
    # No external resource of any kind: every image is inline data.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert re.findall(r'<img [^>]*src="([a-z]+):', html) == ["data"] * html.count("<img ")
    assert "@import" not in html and "url(" not in html


def test_sections_are_open_and_plain_strings_are_escaped(tmp_path):
    run = make_run(tmp_path, "m", [1, 0])

    def perplexity(context):
        return render("<p>{{ n }} runs, first {{ label }}</p>", n=len(context.runs), label="<i>x</i>")

    register_section("perplexity", "Perplexity", perplexity, before="samples")
    register_section("careless", "Careless", lambda context: "<script>alert(1)</script>")
    try:
        html = build_report(load_runs([run.path]))
    finally:
        SECTIONS[:] = [s for s in SECTIONS if s.name not in {"perplexity", "careless"}]
    assert "<p>1 runs, first &lt;i&gt;x&lt;/i&gt;</p>" in html
    assert html.index('id="perplexity"') < html.index('id="samples"')
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert isinstance(render("{{ x }}", x="<"), Markup)


def test_labels_disambiguate_runs_of_one_model(tmp_path):
    first = make_run(tmp_path / "a", "m", [1])
    second = make_run(tmp_path / "b", "m", [0, 1])
    runs = load_runs([first.path, second.path])
    assert [run.label for run in runs] == [f"a/{first.path.name}", f"b/{second.path.name}"]
    third = make_run(tmp_path / "c", "other/m2", [1])
    assert [run.label for run in load_runs([first.path, third.path])] == ["m", "m2"]


def test_load_errors(tmp_path):
    with pytest.raises(NevermindError, match="does not exist"):
        load_runs([tmp_path / "missing"])
    with pytest.raises(NevermindError, match="neither a run directory"):
        load_runs([tmp_path])


# ---------------------------------------------------------------------------- headless Chromium


def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is missing in CI: run scripts/install-chromium.sh")
    pytest.skip("chromium is not installed (scripts/install-chromium.sh); CI runs this test")


class Elements(HTMLParser):
    """Every element and attribute name in a document."""

    def __init__(self):
        super().__init__()
        self.tags, self.attributes = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]


def dump_dom(browser, page, tmp_path):
    """The DOM after the page loaded and any script on it ran, as headless Chromium serialises it."""
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_planted_script_does_not_run_in_chromium(tmp_path):
    browser = chromium()
    # The harness can see a script run: an unescaped page without a policy changes its title.
    control = tmp_path / "control.html"
    control.write_text(f"<html><head><title>{TITLE}</title></head><body>{PAYLOADS['output']}</body></html>")
    assert "<title>pwned-output</title>" in dump_dom(browser, control, tmp_path)

    run = make_run(tmp_path / "runs", "<b>model</b>", [1, 0, 0, 1], xss=True)
    report = write_report([run.path], tmp_path / "report.html", title=TITLE)
    dom = dump_dom(browser, report, tmp_path)
    assert f"<title>{TITLE}</title>" in dom and "pwned" not in re.search(r"<title>.*?</title>", dom).group(0)
    elements = Elements()
    elements.feed(dom)
    assert not {"script", "svg", "iframe", "object"} & set(elements.tags)
    assert not [name for name in elements.attributes if name.startswith("on")]  # no event handler survived
    # It rendered: every section is in the DOM, and the planted text shows as text.
    for section in ("runs", "scores", "heatmaps", "samples"):
        assert f'id="{section}"' in dom
    assert "&lt;script&gt;document.title='pwned-output'&lt;/script&gt;" in dom
    assert dom.count('<img class="plot"') == 2


def test_out_dir_moved_after_indexing(tmp_path):
    make_run(tmp_path / "old", "smollm2-135m-instruct", [1, 0])
    make_run(tmp_path / "old", "gemma-3-270m", [1])
    (tmp_path / "old").rename(tmp_path / "new")  # the index holds the old paths; the children still count
    assert sorted(run.label for run in load_runs([tmp_path / "new"])) == ["gemma-3-270m", "smollm2-135m-instruct"]


def test_echo_rates_sit_beside_the_scores_for_every_model(tmp_path):
    for model, echoes in (("smollm2-135m-instruct", [0, 0, 0, 1]), ("gemma-3-270m", [1, 1, 1, 0]), ("third", None)):
        spec = RunSpec(model=model, tasks=["override"])
        run = RunDir.create(tmp_path, spec)
        run.append([SampleRecord(task="override", id=f"o-{i}", messages=[{"role": "user", "content": "q"}],
                                 output="a", value=float(i % 2), explanation="x",
                                 extra={"new_answer": 1.0} | ({"echo": float(e)} if echoes else {}))
                    for i, e in enumerate(echoes or [0, 0])])  # fmt: skip
        run.update_meta(status="finished", attempts=1)
        RunIndex(tmp_path).start(spec, run.path, attempts=1, started=f"2026-01-0{len(model) % 9 + 1}", n_samples=4)
    html = build_report(load_runs([tmp_path]))
    header = re.search(r"<tr><th>task</th><th>metric</th>(.*?)</tr>", html, re.DOTALL).group(1)
    for label in ("smollm2-135m-instruct", "gemma-3-270m", "third"):
        assert f"<th>{label}</th>" in header and f">{label}: echo</th>" in header
    for echoes in ([0, 0, 0, 1], [1, 1, 1, 0]):
        mean, se = mean_and_se(echoes)
        assert re.search(rf'<td class="num echo" rowspan="2">{mean:.3f} ± {se:.3f}</td>', html)
    assert '<td class="num echo" rowspan="2">–</td>' in html  # a run without echo records
    assert "<td>override</td><td>echo</td>" not in html  # echo is its own column, not a score row
    assert html.count('<img class="plot"') == 1
