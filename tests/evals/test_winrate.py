"""Win rates: the statistics, the local judge, and the API judge against real HTTP servers on
127.0.0.1 — one serving a model, one that misbehaves (times out, answers garbage)."""

from __future__ import annotations

import json
import math
import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from nevermind.errors import NevermindError
from nevermind.evals.judges import APIJudge, Comparison, JudgeError, LocalJudge, judge_prompt, soft_verdict
from nevermind.evals.outputs import OutputRecord, generate_outputs, load_outputs, read_finished
from nevermind.evals.winrate import JUDGMENTS_FILE, fit_length_logistic, judge_pairs, summarize, win_rate
from nevermind.models.openai_api import Endpoint, EndpointError
from nevermind.models.requests import GenerateRequest, GenerationConfig, ScoreRequest
from nevermind.serve import Server, create_app, serve_in_thread
from tests.cli_runner import run_cli

INSTRUCTIONS = [f"Question {i}: name something {c}." for i, c in enumerate(["red", "round", "loud", "cold"])]


def outputs(generator: str, texts: list[str]) -> dict[str, OutputRecord]:
    return {i: OutputRecord(i, t, generator) for i, t in zip(INSTRUCTIONS, texts)}


# ------------------------------------------------------------------ statistics
def test_length_logistic_recovers_known_coefficients():
    x = [math.tanh(k / 7 - 1.5) for k in range(22)]
    y = [1 / (1 + math.exp(-(0.4 + 1.3 * xi))) for xi in x]  # soft labels = the model's own probabilities
    b0, b1 = fit_length_logistic(x, y, ridge=0.0)
    assert b0 == pytest.approx(0.4, abs=1e-6) and b1 == pytest.approx(1.3, abs=1e-6)


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
    result = summarize(judgments, model="a", reference="b", bootstrap=20)
    assert (result.win_rate, result.wins, result.ties, result.losses) == (0.5, 0, 10, 0)
    assert result.first_position_rate == 1.0


def test_soft_win_rate_sees_through_position_bias():
    # the judge always prefers the first answer, but a little less so when that answer is B
    judgments = [
        judgment(f"i{k}", o, 0.9 if o == "ab" else 0.3 + 0.02 * (k % 2)) for k in range(10) for o in ("ab", "ba")
    ]
    result = summarize(judgments, model="a", reference="b", bootstrap=20)
    assert result.ties == 10 and result.first_position_rate == 1.0
    assert result.soft_win_rate == pytest.approx((0.9 + 0.31) / 2)
    # per-instruction soft scores are 0.60 and 0.61, five each: deviations of ±0.005
    assert result.soft_se == pytest.approx(0.005 * math.sqrt(10 / 9) / math.sqrt(10), rel=1e-6)


def test_win_rate_se_and_length_control():
    # A wins exactly when it is longer; half the time it is longer
    judgments = []
    for k in range(20):
        longer = k % 2 == 0
        for o in ("ab", "ba"):
            judgments.append(judgment(f"i{k}", o, 0.9 if longer else 0.1, 300 if longer else 100, 200))
    result = summarize(judgments, model="a", reference="b", bootstrap=50)
    assert result.win_rate == 0.5 and (result.wins, result.losses) == (10, 10)
    assert result.se == pytest.approx(math.sqrt(0.25 * 20 / 19 / 20))
    assert result.length_coefficient > 3 and result.lc_win_rate == pytest.approx(0.5, abs=0.05)
    # now A also wins one short answer: raw and length-controlled rates rise
    judgments[2]["p_a"] = judgments[3]["p_a"] = 0.9
    better = summarize(judgments, model="a", reference="b", bootstrap=50)
    assert better.win_rate == 0.55 and better.lc_win_rate > result.lc_win_rate and better.lc_se > 0


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
    lines = (tmp_path / JUDGMENTS_FILE).read_text().splitlines()
    assert len(lines) == 8 and {json.loads(line)["order"] for line in lines} == {"ab", "ba"}
    again = win_rate(a, b, LocalJudge(tiny_llama), tmp_path)  # nothing left to judge
    assert (
        again.win_rate == result.win_rate and len((tmp_path / JUDGMENTS_FILE).read_text().splitlines()) == 8
    )


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
    with pytest.raises(NevermindError, match="3/8 judgments saved in .*; rerun to resume"):
        judge_pairs(a, b, judge, tmp_path)
    assert len(read_finished(tmp_path / JUDGMENTS_FILE, "key")) == 3
    server.mode, server.calls = "ok", 0
    result = win_rate(a, b, judge, tmp_path)
    assert server.calls == 5  # only the missing judgments were asked for
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
    assert summary["instructions"] == 3 and 0 <= summary["lc_win_rate"] <= 1 and "win rate" in result.stdout
    result = run_cli("winrate", "--outputs", str(a), "--reference", str(b), "--judge", "gpt4")
    assert (
        result.returncode == 2
        and "unknown judge 'gpt4'" in result.stderr
        and "Traceback" not in result.stderr
    )
