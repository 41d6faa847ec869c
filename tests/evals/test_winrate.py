"""Win rates: the statistics, the local judge, and the API judge against real HTTP servers on
127.0.0.1 — one serving a model, one that misbehaves (times out, answers garbage)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import random
import sys
import time
import types

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from nevermind.errors import NevermindError
from nevermind.evals.judges import (
    APIJudge,
    Comparison,
    JudgeError,
    LocalJudge,
    Verdict,
    judge_prompt,
    soft_verdict,
)
from nevermind.evals.outputs import OutputRecord, generate_outputs, load_outputs, read_finished
from nevermind.evals.winrate import (
    JUDGMENTS_FILE,
    alpaca_eval_length_controlled,
    calibration_pairs,
    fit_soft_logistic,
    judge_pairs,
    summarize,
    win_rate,
)
from nevermind.models.openai_api import Endpoint, EndpointError
from nevermind.models.requests import GenerateRequest, GenerationConfig, ScoreRequest
from nevermind.serve import Server, create_app, serve_in_thread
from tests.cli_runner import run_cli

INSTRUCTIONS = [f"Question {i}: name something {c}." for i, c in enumerate(["red", "round", "loud", "cold"])]


def outputs(generator: str, texts: list[str]) -> dict[str, OutputRecord]:
    return {i: OutputRecord(i, t, generator) for i, t in zip(INSTRUCTIONS, texts)}


# ------------------------------------------------------------------ statistics
def test_soft_logistic_recovers_known_coefficients():
    x = [[math.tanh(k / 7 - 1.5), (-1) ** k] for k in range(22)]
    y = [1 / (1 + math.exp(-(0.4 + 1.3 * a - 0.7 * b))) for a, b in x]  # soft labels = the model's own
    b0, (b1, b2) = fit_soft_logistic(x, y)
    assert (b0, b1, b2) == pytest.approx((0.4, 1.3, -0.7), abs=1e-4)


def judgment(instruction: str, order: str, p_a: float, length_a: int = 10, length_b: int = 10) -> dict:
    return {
        "instruction": instruction,
        "order": order,
        "p_a": p_a,
        "judge": "j",
        "length_a": length_a,
        "length_b": length_b,
    }


def test_position_bias_gives_ties_not_wins():
    # a judge that always picks the first position: A wins "ab", loses "ba"
    judgments = [judgment(f"i{k}", o, 1.0 if o == "ab" else 0.0) for k in range(10) for o in ("ab", "ba")]
    result = summarize(judgments, model="a", reference="b", bootstrap=20, alpaca_bootstrap=0)
    assert (result.win_rate, result.wins, result.ties, result.losses) == (0.5, 0, 10, 0)
    assert result.first_position_rate == 1.0 and result.second_position_rate == 0.0
    assert result.preference == pytest.approx(0.5) and result.controlled == pytest.approx(0.5, abs=1e-3)


def test_exactly_half_prefers_neither_position():
    judgments = [judgment(f"i{k}", o, 0.5) for k in range(4) for o in ("ab", "ba")]
    judgments[0]["p_a"] = 0.9  # one judgment prefers A, shown first
    result = summarize(judgments, model="a", reference="b", bootstrap=0, alpaca_bootstrap=0)
    assert result.first_position_rate == 1 / 8 and result.second_position_rate == 0.0


def test_soft_win_rate_averages_probabilities_and_the_headline_log_odds():
    # the judge always prefers the first answer, but a little less so when that answer is B
    judgments = [
        judgment(f"i{k}", o, 0.9 if o == "ab" else 0.3 + 0.02 * (k % 2)) for k in range(10) for o in ("ab", "ba")
    ]
    result = summarize(judgments, model="a", reference="b", bootstrap=20, alpaca_bootstrap=0)
    assert result.ties == 10 and result.first_position_rate == 1.0
    assert result.soft_win_rate == pytest.approx((0.9 + 0.31) / 2)
    # per-instruction soft scores are 0.60 and 0.61, five each: deviations of ±0.005
    assert result.soft_se == pytest.approx(0.005 * math.sqrt(10 / 9) / math.sqrt(10), rel=1e-6)
    logit = lambda p: math.log(p / (1 - p))
    expected = [1 / (1 + math.exp(-(logit(0.9) + logit(q)) / 2)) for q in (0.3, 0.32)]
    assert result.preference == pytest.approx(sum(expected) / 2)


def simulated_judgments(n, *, seed=0, bias=3.0, mean=0.4, spread=0.3, length_logits_per_1000_chars=1.0, noise=0.5):
    """A judge with a first-position bonus of `bias` logits, a real preference for A (mean and
    spread over instructions, in logits) and a liking for length; A's answers are longer.
    Returns the judgments and the true preference at equal length and no position advantage."""
    rng = random.Random(seed)
    judgments, truth = [], []
    for k in range(n):
        theta = rng.gauss(mean, spread)
        truth.append(1 / (1 + math.exp(-theta)))
        length_b = max(50, int(rng.gauss(500, 150)))
        length_a = max(50, int(length_b + rng.gauss(100, 120)))  # A is longer on average
        for order in ("ab", "ba"):
            position = 1 if order == "ab" else -1
            z = theta + bias * position + length_logits_per_1000_chars * (length_a - length_b) / 1000
            z += rng.gauss(0, noise)
            judgments.append(judgment(f"i{k}", order, 1 / (1 + math.exp(-z)), length_a, length_b))
    return judgments, sum(truth) / n


def test_biased_judge_simulation_recovers_the_true_preference():
    """Issue 12: +3-logit first-position bias, real preference for A (+0.4 logits, spread 0.3),
    A longer and the judge liking length. The thresholded win rate reads 0.500 ± 0.000."""
    judgments, truth = simulated_judgments(400)
    result = summarize(judgments, model="a", reference="b", bootstrap=100, alpaca_bootstrap=0)
    assert 0.58 < truth < 0.62
    assert result.preference == pytest.approx(truth, abs=0.05) and result.preference_se > 0
    assert result.controlled == pytest.approx(truth, abs=0.05) and result.controlled_se > 0
    assert result.controlled == pytest.approx(truth, abs=0.02)  # length control removes the length gain
    assert result.position_coefficient > 2.5 and result.length_coefficient > 0
    # what the earlier statistics read on the same judgments
    assert (result.win_rate, result.se, result.ties) == (0.5, 0.0, 400)
    assert result.soft_win_rate < truth - 0.05  # averaging probabilities shrinks toward ½


def test_length_control_removes_a_pure_length_preference():
    # A wins exactly when it is longer (by the judge's liking for length), whatever the position
    judgments, _ = simulated_judgments(300, seed=1, bias=0.0, mean=0.0, spread=0.0, length_logits_per_1000_chars=8)
    result = summarize(judgments, model="a", reference="b", bootstrap=50, alpaca_bootstrap=0)
    assert result.preference > 0.6 and result.length_coefficient > 1
    assert result.controlled == pytest.approx(0.5, abs=0.03) and result.controlled_se > 0


# ------------------------------------------------------------------ alpaca_eval, cross-checked
def import_alpaca_glm(monkeypatch):
    """alpaca_eval's glm_winrate module, imported without running the package's __init__ (which
    needs its CLI dependencies) and without setuptools' removed pkg_resources (used only for
    version checks elsewhere in alpaca_eval.utils)."""
    for module in ("pandas", "patsy", "sklearn", "datasets", "huggingface_hub"):
        pytest.importorskip(module)
    spec = importlib.util.find_spec("alpaca_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("alpaca-eval is not installed")
    package = types.ModuleType("alpaca_eval")
    package.__path__ = list(spec.submodule_search_locations)
    for name in [m for m in sys.modules if m == "alpaca_eval" or m.startswith("alpaca_eval.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "alpaca_eval", package)
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "pkg_resources", types.ModuleType("pkg_resources"))
    return importlib.import_module("alpaca_eval.metrics.glm_winrate")


def test_alpaca_eval_length_controlled_matches_alpaca_eval(monkeypatch, tmp_path):
    glm = import_alpaca_glm(monkeypatch)
    import pandas as pd

    judgments, _ = simulated_judgments(60, seed=2, bias=0.5, mean=0.3, spread=0.8, length_logits_per_1000_chars=4)
    instructions = sorted({j["instruction"] for j in judgments}, key=lambda i: int(i[1:]))
    rng = random.Random(5)
    difficulty = {i: rng.gauss(0, 1) for i in instructions}
    for j in judgments:  # harder instructions: A does worse, so the difficulty column carries signal
        j["p_a"] = 1 / (1 + math.exp(-(math.log(j["p_a"] / (1 - j["p_a"])) - 0.8 * difficulty[j["instruction"]])))
    # glm_winrate reads instruction difficulties from a hub file (df_gamed.csv): give it ours
    gamed = tmp_path / "df_gamed.csv"
    pd.DataFrame(
        {"index": range(len(instructions)), "instruction_difficulty": [difficulty[i] for i in instructions], "model": "x"}
    ).to_csv(gamed, index=False)
    monkeypatch.setattr(glm, "hf_hub_download", lambda **_: str(gamed))
    annotations = pd.DataFrame(
        [
            {
                "preference": 1 + j["p_a"],  # 1: output_1 (the reference) better, 2: output_2 (the model)
                "output_1": "b" * j["length_b"],
                "output_2": "a" * j["length_a"],
                "index": instructions.index(j["instruction"]),
                "generator_1": "reference",
                "generator_2": "model",
            }
            for j in judgments
        ]
    )
    for name, given in (("length_controlled_minimal", None), ("length_controlled_noreg", difficulty)):
        theirs = glm.get_length_controlled_winrate(annotations.copy(), glm_name=name, save_weights_dir=None)
        ours = alpaca_eval_length_controlled(judgments, given)
        assert 100 * ours == pytest.approx(theirs["length_controlled_winrate"], abs=1e-9), name
        assert abs(ours - 0.5) > 0.02, name  # not a degenerate all-zero fit


# ------------------------------------------------------------------ calibration and content keys
class RuleJudge:
    """A deterministic judge: P(first better) from a rule over the texts (a real Judge, no model)."""

    def __init__(self, rule, name="rule"):
        self.rule, self.name, self.batch_size, self.calls = rule, name, 4, 0

    def judge(self, comparisons):
        self.calls += len(comparisons)
        return [Verdict(self.rule(c), "rule") for c in comparisons]


def mentions_topic(comparison):
    """Prefers the answer that shares a word with the instruction's last word (its topic)."""
    topic = comparison.instruction.rstrip(".").split()[-1]
    first, second = topic in comparison.first, topic in comparison.second
    return 0.8 if first and not second else 0.2 if second and not first else 0.5


def test_calibration_tells_a_content_judge_from_a_position_judge(tmp_path):
    a = outputs("a", ["something red", "a round ball", "loud drums", "cold ice"])
    b = outputs("b", ["a red apple", "round moon", "loud thunder", "cold snow"])
    good = win_rate(a, b, RuleJudge(mentions_topic), tmp_path / "good")
    assert good.calibration_accuracy == 1.0 and good.calibration_pairs == 4 and not good.calibration_near_chance
    biased = win_rate(a, b, RuleJudge(lambda c: 0.9, "first"), tmp_path / "biased")
    assert (biased.calibration_accuracy, biased.calibration_se) == (0.5, 0.0) and biased.calibration_near_chance
    summary = json.loads((tmp_path / "biased" / "summary.json").read_text())
    assert summary["calibration_near_chance"] is True and summary["calibration_accuracy"] == 0.5
    pairs = calibration_pairs(b, INSTRUCTIONS, seed=3)
    assert [i for i, _ in pairs] == INSTRUCTIONS and all(b[i].output != o for i, o in pairs)


def test_judgments_are_keyed_on_content_and_reuse_is_counted(tmp_path):
    a = outputs("a", ["something red", "a round ball", "loud drums", "cold ice"])
    b = outputs("b", ["a red apple", "round moon", "loud thunder", "cold snow"])
    judge = RuleJudge(mentions_topic)
    first = win_rate(a, b, judge, tmp_path)
    assert (first.judged, first.reused, judge.calls) == (16, 0, 16)  # 8 calibration + 8 comparisons
    again = win_rate(a, b, judge, tmp_path)
    assert (again.judged, again.reused, judge.calls) == (0, 16, 16) and again.preference == first.preference
    # regenerated outputs: the changed instruction is judged anew, with its new length
    a[INSTRUCTIONS[0]] = OutputRecord(INSTRUCTIONS[0], "nothing at all, a much longer answer now", "a")
    changed = win_rate(a, b, judge, tmp_path)
    assert (changed.judged, changed.reused, judge.calls) == (2, 14, 18)
    assert changed.preference < first.preference and changed.mean_length_a > first.mean_length_a
    assert json.loads((tmp_path / "summary.json").read_text())["unused_records"] == 2
    other = RuleJudge(mentions_topic, name="another judge")
    assert win_rate(a, b, other, tmp_path).judged == 16  # another judge's verdicts are never reused


# ------------------------------------------------------------------ local judge
def test_local_judge_reads_verdict_logprobs(tiny_gemma):
    judge = LocalJudge(tiny_gemma, batch_size=3)
    comparisons = [
        Comparison(i, f"answer {k}", "other answer that is longer") for k, i in enumerate(INSTRUCTIONS)
    ]
    verdicts = judge.judge(comparisons)  # one padded batch
    for comparison, verdict in zip(comparisons, verdicts):
        prompt = tiny_gemma.format_prompt(GenerateRequest(judge_prompt(comparison, 1500), chat=True))
        one, two = tiny_gemma.score([ScoreRequest(prompt, "1"), ScoreRequest(prompt, "2")])
        assert verdict.p_first == pytest.approx(soft_verdict(one.logprob, two.logprob), abs=1e-4)


def test_win_rate_with_local_judge_resumes(tiny_llama, tmp_path):
    a = outputs("a", ["apple", "ball", "drum", "ice"])
    b = outputs("b", ["a fire truck", "the moon", "thunder", "snow"])
    result = win_rate(a, b, LocalJudge(tiny_llama), tmp_path)
    assert result.instructions == 4 and 0 <= result.win_rate <= 1
    lines = [json.loads(line) for line in (tmp_path / JUDGMENTS_FILE).read_text().splitlines()]
    assert len(lines) == 16  # 4 instructions × 2 orders, calibration then comparison
    assert {(r["kind"], r["order"]) for r in lines} == {
        ("calibration", "real-first"), ("calibration", "real-second"), ("comparison", "ab"), ("comparison", "ba")
    }
    again = win_rate(a, b, LocalJudge(tiny_llama), tmp_path)  # nothing left to judge
    assert again.preference == result.preference and (again.judged, again.reused) == (0, 16)
    assert len((tmp_path / JUDGMENTS_FILE).read_text().splitlines()) == 16


# ------------------------------------------------------------------ API judge, misbehaving server
class Misbehaving:
    """A real HTTP judge endpoint whose behaviour the test switches."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0
        self.good_before_garbage = 0
        self.app = FastAPI()

        @self.app.post("/v1/chat/completions")
        def chat(body: dict, request: Request):
            self.calls += 1
            self.authorization = request.headers.get("authorization")
            if self.mode == "slow":
                time.sleep(1.0)
            if self.mode == "html":
                return PlainTextResponse("<html>bad gateway</html>")
            if self.mode == "flaky" and self.good_before_garbage <= 0:
                return {"choices": [{"message": {"content": "I think both are lovely!"}}]}
            self.good_before_garbage -= 1
            first = body["messages"][0]["content"].split("# Response 1\n")[1].split("\n")[0]
            return {"choices": [{"message": {"content": "1" if len(first) > 5 else "2"}}]}


@pytest.fixture(scope="module")
def misbehaving():
    server = Misbehaving()
    with serve_in_thread(server.app) as url:
        yield server, url


def test_api_judge_timeout_and_garbage_are_one_line_errors(misbehaving):
    server, url = misbehaving
    comparison = [Comparison("q", "a long answer", "b")]
    server.mode, server.calls = "slow", 0
    judge = APIJudge(Endpoint(url, timeout=0.3, max_retries=1, backoff=0.01))
    with pytest.raises(EndpointError, match=r"timed out after 0.3 s \(2 attempts\)"):
        judge.judge(comparison)
    assert server.calls == 2
    server.mode = "html"
    with pytest.raises(EndpointError, match="not JSON"):
        judge.judge(comparison)
    server.mode, server.good_before_garbage = "flaky", 0
    with pytest.raises(JudgeError, match="answered neither 1 nor 2: 'I think both are lovely!'"):
        judge.judge(comparison)
    time.sleep(1.0)  # let the slow handler's thread finish before other tests use the server


def test_api_key_comes_from_the_environment_and_stays_out_of_errors(misbehaving, monkeypatch):
    server, url = misbehaving
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-test-secret-123")
    judge = APIJudge(Endpoint(url, api_key_env="JUDGE_TEST_KEY", max_retries=0))
    server.mode, server.good_before_garbage = "flaky", 0
    with pytest.raises(JudgeError) as caught:
        judge.judge([Comparison("q", "a", "b")])
    assert server.authorization == "Bearer sk-test-secret-123"
    assert "sk-test-secret" not in str(caught.value) and "sk-test-secret" not in judge.name
    monkeypatch.delenv("JUDGE_TEST_KEY")
    server.mode = "ok"
    judge.judge([Comparison("q", "a long answer", "b")])
    assert server.authorization is None


def test_judge_failure_keeps_judgments_and_resumes(misbehaving, tmp_path):
    server, url = misbehaving
    a = outputs("a", ["a long answer"] * 4)
    b = outputs("b", ["no"] * 4)
    judge = APIJudge(Endpoint(url, max_retries=0))
    server.mode, server.good_before_garbage, server.calls = "flaky", 3, 0
    # every reference answer reads "no": no known-answer pair exists, so no calibration judgment
    with pytest.raises(NevermindError, match="3/8 judgments saved in .*; rerun to resume"):
        judge_pairs(a, b, judge, tmp_path)
    assert len(read_finished(tmp_path / JUDGMENTS_FILE, "key")) == 3
    server.mode, server.calls = "ok", 0
    result = win_rate(a, b, judge, tmp_path)
    assert server.calls == 5 and result.reused == 3  # only the missing judgments were asked for
    assert result.calibration_accuracy is None and result.calibration_near_chance
    assert result.win_rate == 1.0 and result.wins == 4  # the longer answer wins in both orders


# ------------------------------------------------------------------ API judge against the real server
@pytest.mark.slow
def test_api_judge_on_served_model_agrees_with_local_judge(smollm2):
    comparisons = [
        Comparison("What is the capital of France?", "The capital of France is Paris.", "I like turtles."),
        Comparison("Write a greeting.", "Hello! I hope you are having a wonderful day.", "42"),
    ]
    local = LocalJudge(smollm2).judge(comparisons)
    with serve_in_thread(create_app(Server(smollm2, model_id="smollm2"))) as url:
        remote = APIJudge(Endpoint(url), "smollm2").judge(comparisons)
    for l, r in zip(local, remote):
        assert r.p_first == pytest.approx(l.p_first, abs=1e-3)
    assert local[0].p_first != pytest.approx(0.5, abs=1e-3)


# ------------------------------------------------------------------ outputs and the CLI
def test_generate_outputs_resumes_after_a_torn_line(tiny_llama, tmp_path):
    path = tmp_path / "out.jsonl"
    config = GenerationConfig(max_new_tokens=4)
    first = generate_outputs(tiny_llama, INSTRUCTIONS, path, config=config, batch_size=2)
    assert [r.instruction for r in first] == INSTRUCTIONS
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][:20])  # a kill in the middle of the last line
    seen = []
    again = generate_outputs(
        tiny_llama, INSTRUCTIONS, path, config=config, on_progress=lambda d, t: seen.append(d)
    )
    assert seen[0] == 3 and again == first
    assert (
        len(path.read_text().splitlines()) == 4
        and load_outputs(path)[INSTRUCTIONS[0]].output == first[0].output
    )


def test_cli_generate_outputs_and_winrate(tiny_llama_dir, tmp_path):
    instructions = tmp_path / "instructions.jsonl"
    instructions.write_text("".join(json.dumps({"instruction": i}) + "\n" for i in INSTRUCTIONS[:3]))
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, tokens in ((a, "3"), (b, "6")):
        result = run_cli(
            "generate-outputs",
            "-m",
            str(tiny_llama_dir),
            "--instructions",
            str(instructions),
            "--max-new-tokens",
            tokens,
            "-o",
            str(path),
        )
        assert result.returncode == 0, result.stderr
    out = tmp_path / "run"
    result = run_cli(
        "winrate",
        "--outputs",
        str(a),
        "--reference",
        str(b),
        "--judge",
        f"local:{tiny_llama_dir}",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["instructions"] == 3 and 0 <= summary["controlled"] <= 1 and "win rate" in result.stdout
    # the tiny random model may answer every instruction alike: calibrated only where answers differ
    distinct = len({json.loads(line)["output"] for line in b.read_text().splitlines()})
    assert summary["calibration_pairs"] == (3 if distinct >= 2 else 0)
    stderr = " ".join(result.stderr.split())  # rich wraps long lines
    stdout = "".join(result.stdout.split())  # rich wraps header cells in a narrow terminal
    assert "calibration" in stdout or "calibra" in stdout, result.stdout
    assert "judgments made" in stderr
    if summary["calibration_pairs"] == 0:
        assert "the judge was not calibrated" in stderr
    result = run_cli("winrate", "--outputs", str(a), "--reference", str(b), "--judge", "gpt4")
    assert (
        result.returncode == 2
        and "unknown judge 'gpt4'" in result.stderr
        and "Traceback" not in result.stderr
    )
    # the local judge loads through the backend registry: --backend picks it, a wrong one is one line
    result = run_cli("winrate", "--outputs", str(a), "--reference", str(b), "--judge", f"local:{tiny_llama_dir}",
                     "--backend", "nope")
    assert result.returncode == 2 and "unknown backend 'nope'" in result.stderr, result.stderr
