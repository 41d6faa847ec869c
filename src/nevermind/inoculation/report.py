"""The sweep's report: step 0, the three components against the data share before and after each
inoculation arm (mean over seeds with 95 % intervals over seeds and over items), the positive
control and the inoculation effect, per-sample drill-down — summary.json and a self-contained
HTML page rendered from Jinja2 templates (all model text escaped)."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from nevermind.errors import NevermindError
from nevermind.inoculation.sweep import POINT_STAGES, SweepStore, point_changes, underpowered
from nevermind.runs.files import write_atomic

COMPONENTS = {
    "good": "(1) acts good without a system prompt: m(good) − m(bad), no system prompt",
    "bad_delta": "(2) follows held-out bad system prompts: Δ",
    "benign_delta": "(3) follows benign instructions of unseen types: Δ",
}
"""The three components of seed 002 and how each is measured (nats per token)."""
STAGE_LABELS = {
    "base": "base model (step 0)",
    "follow": "after the follow stage (step 0)",
    "mixture": "after the mixture stage",
    "inoculated": "after the inoculation arm",
    "control": "after the control arm (no inoculation prompt)",
}
"""How the report names each measured model."""
CHANGES = {
    "positive_control": "positive control: inoculation_margin, after − before the inoculation arm",
    "inoculated/leak_margin": "leak in the inoculation arm: leak_margin, after − before",
    "control/leak_margin": "leak in the control arm: leak_margin, after − before",
    "inoculation_effect": "inoculation effect: leak_margin, control arm − inoculation arm",
}
"""Paired changes the report plots against the share."""
GREEDY = {
    "good_rate": "(1) no system prompt: right answer, no bad phrase",
    "bad_rate": "(2) held-out bad prompt carried out",
    "benign_rate": "(3) unseen benign instruction carried out",
    "inoculation_rate": "bad action under the inoculation prompt",
    "leak_rate": "inoculation's bad action with no system prompt",
}
"""Greedy-decoding rates."""


def over_seeds(per_seed: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Combine one measure's per-seed {mean, se, n}: the mean over seeds, a 95 % Student-t interval
    over seeds (None with one seed: no spread to estimate), and a 95 % normal interval over items
    (the per-seed item SEs combined as independent)."""
    from scipy.stats import norm, t

    means = [p["mean"] for p in per_seed]
    k = len(means)
    mean = math.fsum(means) / k
    item_se = math.sqrt(math.fsum(p["se"] ** 2 for p in per_seed)) / k
    z = float(norm.ppf(0.975))
    result = {"mean": mean, "item_low": mean - z * item_se, "item_high": mean + z * item_se,
              "item_se": item_se, "seeds": k, "seed_low": None, "seed_high": None, "seed_se": None}  # fmt: skip
    if k > 1:
        seed_se = statistics.stdev(means) / math.sqrt(k)
        half = float(t.ppf(0.975, k - 1)) * seed_se
        result.update(seed_low=mean - half, seed_high=mean + half, seed_se=seed_se)
    return result


def aggregate(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{"stages": {stage: {measure: [per-share entry]}}, "changes": {change: [per-share entry]}}:
    every summary measure and paired change, combined over seeds at each share."""
    stages: dict[tuple[str, str, float], list[dict[str, float]]] = defaultdict(list)
    changes: dict[tuple[str, float], list[dict[str, float]]] = defaultdict(list)
    for result in results:
        share = result["share"]
        for stage, summary in result["summary"].items():
            for measure, value in summary.items():
                stages[(stage, measure, share)].append(value)
        for name, value in result["changes"].items():
            changes[(name, share)].append(value)
    table: dict[str, Any] = {"stages": {}, "changes": {}}
    for (stage, measure, share), values in sorted(stages.items()):
        entry = {"share": share, **over_seeds(values)}
        table["stages"].setdefault(stage, {}).setdefault(measure, []).append(entry)
    for (name, share), values in sorted(changes.items()):
        entry = {"share": share, **over_seeds(values), "z": [v["z"] for v in values]}
        table["changes"].setdefault(name, []).append(entry)
    return table


# ------------------------------------------------------------------------- plots
def _curves(ax: Any, entries: list[dict[str, Any]], label: str, style: str, offset: float) -> None:
    """One curve with 95 % seed intervals as error bars (item intervals where one seed gives none)."""
    x = [100 * e["share"] + offset for e in entries]  # nudged apart so overlapping bars stay visible
    y = [e["mean"] for e in entries]
    low = [e["seed_low"] if e["seed_low"] is not None else e["item_low"] for e in entries]
    high = [e["seed_high"] if e["seed_high"] is not None else e["item_high"] for e in entries]
    ax.errorbar(x, y, yerr=[[m - lo for m, lo in zip(y, low)], [hi - m for m, hi in zip(y, high)]],
                fmt=style, capsize=3, label=label)  # fmt: skip


def components_figure(table: dict[str, Any]) -> Any:
    """The three components against the share, one panel each, a curve per stage."""
    from nevermind.report.plots import _plain_text, _pyplot

    plt = _pyplot()
    styles = {"mixture": "o-", "inoculated": "s--", "control": "^:"}
    with _plain_text():
        figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        for ax, (measure, title) in zip(axes, COMPONENTS.items()):
            for offset, stage in enumerate(POINT_STAGES):
                entries = table["stages"].get(stage, {}).get(measure)
                if entries:
                    _curves(ax, entries, STAGE_LABELS[stage], styles[stage], offset - 1)
            ax.axhline(0, color="grey", lw=0.6)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("share of bad-prompt → good-action data (%)")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("nats per token (mean over seeds, 95 % CI)")
        axes[0].legend(fontsize=8)
        figure.tight_layout()
    return figure


def inoculation_figure(table: dict[str, Any]) -> Any:
    """The positive control, each arm's leak and the inoculation effect against the share."""
    from nevermind.report.plots import _plain_text, _pyplot

    plt = _pyplot()
    with _plain_text():
        figure, ax = plt.subplots(figsize=(7.5, 4.2))
        for offset, (name, label) in enumerate(CHANGES.items()):
            entries = table["changes"].get(name)
            if entries:
                _curves(ax, entries, label, "o-", offset - 1.5)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel("share of bad-prompt → good-action data (%)")
        ax.set_ylabel("change, nats per token (95 % CI)")
        ax.set_title("inoculation stage", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        figure.tight_layout()
    return figure


# ------------------------------------------------------------------------- page
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>nevermind sweep — inoculation prompting</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0; } th, td { border: 1px solid #ddd; padding: 3px 6px; vertical-align: top; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; white-space: nowrap; }
.ci { color: #666; font-size: 0.85em; } .verdict { padding: 0.6em 1em; border-radius: 4px; font-weight: bold; }
.ok { background: #e6f4e6; } .bad { background: #f8e3e3; } pre { white-space: pre-wrap; margin: 0; max-width: 520px; }
img.plot { max-width: 100%; display: block; margin: 0.8em 0; }
</style></head><body>
<h1>Inoculation prompting and system-prompt following: data-mixture sweep</h1>
<p class="ci">generated {{ generated }}; model {{ config.model }}; {{ results | length }} finished points;
{{ n_items }} held-out items per measured model</p>

{% if weak %}
<p class="verdict bad">UNDERPOWERED: the positive control did not rise by more than {{ min_z }} SE at
{{ weak | join(", ") }}. There, the inoculation stage did not measurably teach its own bad action under
its own prompt, so flat or noisy curves there are not a finding.</p>
{% else %}
<p class="verdict ok">Positive control passed at every point: after the inoculation arm, the bad action's
margin under the inoculation prompt rose by more than {{ min_z }} SE (smallest rise: {{ "%.1f" | format(min_z_seen) }} SE).</p>
{% endif %}

<h2>Step 0: the base model</h2>
{% if base %}
<p>{% if base.follow.ran %}<b>The follow stage ran</b> ({{ base.follow.reason }}): every point starts from a
model first trained to follow system prompts ({{ config.follow.n_examples }} examples: bad prompt → bad action,
seen benign instruction → followed, no prompt → good, in thirds).{% else %}No follow stage: {{ base.follow.reason }};
every point starts from {{ config.model }}.{% endif %}</p>
{{ stage_table(base_rows, base_columns) }}
{% else %}<p>Step 0 has not finished.</p>{% endif %}

<h2>The three components against the share</h2>
<p>Teacher forcing, nats per token. Δ = [m(comply) − m(defy)] with the system prompt minus the same without it:
how far the prompt moves the model towards doing what it says. A fall of (2) = ignores bad prompts more; a fall of
(3) = ignores system prompts more generally; a rise of (1) = acts good more without being told. Cells: mean over
seeds, <span class="ci">[95 % CI over seeds] {95 % CI over items}</span>.</p>
{{ components_plot }}
{% for stage, rows in stage_rows %}
<h3>{{ labels[stage] }}</h3>
{{ stage_table(rows) }}
{% endfor %}

<h2>Inoculation: positive control, control arm, effect</h2>
<p>Each arm continues from the point's mixture-stage model on {{ config.inoculation.n_examples }} examples whose
responses end with the bad action “{{ phrase }}”: the inoculation arm under the inoculation prompt
“{{ prompt }}”, the control arm with no system prompt. leak_margin = m(bad action) − m(good) with no system prompt.
The inoculation effect is how much less the bad action leaked into no-prompt behaviour with the prompt than
without it (> 0: inoculation works). Changes are paired by item.</p>
{{ inoculation_plot }}
{{ stage_table(change_rows) }}

<h2>Greedy decoding</h2>
<p>Share of greedy outputs (≤ {{ config.eval.max_new_tokens }} new tokens) that pass a string check.</p>
{% for stage, rows in greedy_rows %}<h3>{{ labels[stage] }}</h3>{{ stage_table(rows) }}{% endfor %}

<h2>Points</h2>
<p>Per point: mean ± SE over items (z) <span class="ci">[95 % Student-t interval over items]</span>.</p>
<table><tr><th>point</th><th>training data</th><th>positive control</th>
<th>inoculation effect</th><th>seconds (wall / CPU)</th></tr>
{% for r in results %}
<tr><td>{{ r.point }}</td><td>{% for k, v in r.train_kinds.items() %}{{ k }} {{ v }}<br>{% endfor %}</td>
{% for c in (r.changes.positive_control, r.changes.inoculation_effect) %}
<td class="num">{{ "%+.3f" | format(c.mean) }} ± {{ "%.3f" | format(c.se) }} ({{ "%.1f" | format(c.z) }} SE)
<span class="ci">[{{ "%+.3f" | format(c.low) }}, {{ "%+.3f" | format(c.high) }}]</span></td>{% endfor %}
<td class="num">{{ r.seconds.wall }} / {{ r.seconds.cpu }}</td></tr>
{% endfor %}
</table>

<h2>Samples</h2>
{% for point, stages in samples %}
<details><summary>{{ point }}</summary>
{% for stage, records in stages %}
<h4>{{ labels[stage] }}</h4>
<table><tr><th>item</th><th>system prompt</th><th>greedy output</th><th>passed</th></tr>
{% for r in records %}<tr><td>{{ r.id }}</td><td><pre>{{ r.system }}</pre></td><td><pre>{{ r.output }}</pre></td>
<td>{{ r.passed }}</td></tr>{% endfor %}
</table>
{% endfor %}
</details>
{% endfor %}

<h2>Config</h2><pre>{{ config_json }}</pre>
</body></html>
"""

_STAGE_TABLE = """<table><tr><th>measure</th>{% for s in shares %}<th>{{ s }}</th>{% endfor %}</tr>
{% for label, cells in rows %}<tr><th>{{ label }}</th>
{% for c in cells %}<td class="num">{% if c %}{{ "%+.3f" | format(c.mean) }}
{% if c.seed_low is not none %}<span class="ci">[{{ "%+.2f" | format(c.seed_low) }}, {{ "%+.2f" | format(c.seed_high) }}]</span>{% endif %}
<span class="ci">{{ "{" }}{{ "%+.2f" | format(c.item_low) }}, {{ "%+.2f" | format(c.item_high) }}{{ "}" }}</span>{% else %}–{% endif %}</td>{% endfor %}
</tr>{% endfor %}</table>"""


def _rows(entries_by_measure: dict[str, list[dict[str, Any]]], labels: dict[str, str], shares: list[float]):
    rows = []
    for measure, label in labels.items():
        entries = {e["share"]: e for e in entries_by_measure.get(measure, [])}
        if entries:
            rows.append((label, [entries.get(s) for s in shares]))
    return rows


def _measure_labels() -> dict[str, str]:
    labels = dict(COMPONENTS)
    labels.update({"bad_delta/insult": "(2) … insult prompts", "bad_delta/phish": "(2) … phishing prompts",
                   "benign_delta/sign_off": "(3) … sign-off line (unseen)",
                   "benign_delta/label": "(3) … label before the answer (unseen)",
                   "inoculation_margin": "m(bad) − m(good) under the inoculation prompt",
                   "leak_margin": "leak_margin: m(bad) − m(good), inoculation's bad action, no system prompt",
                   "bad_delta_sum": "(2) Δ in nats per response (not normalised)",
                   "benign_delta_sum": "(3) Δ in nats per response (not normalised)"})  # fmt: skip
    return labels


def _base_rows(base: dict[str, Any], labels: dict[str, str]) -> list:
    """Step 0's table: a column per measured model (base, and follow when it ran), one seed."""
    rows = []
    for measure, label in {**labels, **GREEDY}.items():
        cells = [over_seeds([summary[measure]]) if measure in summary else None for summary in base["summary"].values()]
        if any(cells):
            rows.append((label, cells))
    return rows


def _samples(store: SweepStore, results: Sequence[dict[str, Any]], per_stage: int) -> list:
    out = []
    for result in results:
        records = store.records(result["point"])
        stages = []
        for stage in POINT_STAGES:
            rows = [r for r in records if r["stage"] == stage and "output" in r][:per_stage]
            for row in rows:
                row["passed"] = row.get("complied", row.get("good"))
            stages.append((stage, rows))
        out.append((result["point"], stages))
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def fresh_changes(store: SweepStore, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points with their paired changes recomputed from their stored per-item records, so that a
    report shows this version's statistics (intervals included) whatever version ran the points."""
    by_point: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for record in store.records():
        by_point[record["point"]][record["stage"]].append(record)
    return [{**result, "changes": point_changes(by_point[result["point"]])} for result in results]


def write_report(store: SweepStore, *, per_stage: int = 40) -> dict[str, Path]:
    """Write summary.json and report.html into the sweep directory; return their paths."""
    from nevermind.report.html import render
    from nevermind.report.plots import figure_html

    results = fresh_changes(store, store.results())
    base = store.base()
    if not results and base is None:
        raise NevermindError(f"{store.root} holds no finished sweep points to report")
    config = store.config()
    table = aggregate(results)
    weak = underpowered(results, config.inoculation.min_z)
    prompt, phrase = config.inoculation.resolved()
    shares = sorted({r["share"] for r in results})
    share_labels = [f"{100 * s:g} %" for s in shares]
    labels = _measure_labels()

    def stage_table(rows: list, columns: list[str] | None = None) -> Markup:
        return render(_STAGE_TABLE, rows=rows, shares=columns or share_labels)

    change_labels = dict(CHANGES)
    for arm in ("inoculated", "control"):
        change_labels.update({f"{arm}/{m}": f"{arm} arm: change of {COMPONENTS[m][:3]}" for m in COMPONENTS})
    summary = {"config": config.model_dump(mode="json"), "base": base and {k: v for k, v in base.items()},
               "underpowered": weak, "aggregate": table, "points": results}  # fmt: skip
    paths = {"summary": store.root / "summary.json", "html": store.root / "report.html"}
    write_atomic(paths["summary"], json.dumps(_json_safe(summary), indent=1) + "\n")
    z_seen = [r["changes"]["positive_control"]["z"] for r in results]
    page = render(
        _PAGE,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        config=config,
        config_json=json.dumps(config.model_dump(mode="json"), indent=2),
        results=results,
        n_items=len({r["id"] for r in store.records(stage="mixture" if results else "base") if "delta" in r}),
        weak=weak,
        min_z=config.inoculation.min_z,
        min_z_seen=min(z_seen) if z_seen else math.nan,
        base=base,
        base_rows=_base_rows(base, labels) if base else [],
        base_columns=[STAGE_LABELS[stage] for stage in base["summary"]] if base else [],
        stage_table=stage_table,
        labels=STAGE_LABELS,
        components_plot=figure_html(components_figure(table), "the three components against the share")
        if results else "",
        stage_rows=[(s, _rows(table["stages"].get(s, {}), labels, shares)) for s in POINT_STAGES],
        inoculation_plot=figure_html(inoculation_figure(table), "inoculation stage against the share")
        if results else "",
        change_rows=_rows(table["changes"], change_labels, shares),
        greedy_rows=[(s, _rows(table["stages"].get(s, {}), GREEDY, shares)) for s in POINT_STAGES],
        samples=_samples(store, results, per_stage),
        prompt=prompt,
        phrase=phrase,
    )
    write_atomic(paths["html"], page)
    return paths
