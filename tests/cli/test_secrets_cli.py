"""Credentials in an endpoint URL (http://user:password@host/v1) are used (as HTTP basic auth) and
never printed or written: not in judgments, summaries, run configs, the index, directory names or
any message. The endpoint is a real HTTP server on 127.0.0.1."""

import base64
import json
from pathlib import Path

from tests.cli_runner import run_cli
from tests.endpoint_stub import Reply, endpoint_stub

PROBE = str(Path(__file__).parents[1] / "runs" / "probe_tasks.py") + ":probe"
USER, PASSWORD = "alice", "pw-s3cret-4242"


def leaks(root: Path, *texts: str) -> list[str]:
    """Every file (by content) and path (by name) under `root`, and every text, that shows the password."""
    found = [str(path) for path in root.rglob("*") if PASSWORD in path.name
             or (path.is_file() and PASSWORD.encode() in path.read_bytes())]
    return found + [text for text in texts if PASSWORD in text]


def basic_auth_seen(stub) -> bool:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return bool(stub.seen) and all(seen.headers.get("authorization") == expected for seen in stub.seen)


def test_winrate_judge_url_credentials_stay_secret(tmp_path):
    for name, answer in (("model.jsonl", "a long, careful answer"), ("reference.jsonl", "no")):
        (tmp_path / name).write_text("".join(
            json.dumps({"instruction": f"Question {i}?", "output": answer, "generator": name}) + "\n" for i in range(2)))
    with endpoint_stub() as (stub, url):
        judge = "openai:" + url.replace("http://", f"http://{USER}:{PASSWORD}@") + "#judge"
        result = run_cli("winrate", "--outputs", "model.jsonl", "--reference", "reference.jsonl", "--judge", judge,
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert basic_auth_seen(stub) and len(stub.seen) == 4  # both orders of both instructions
    assert list(tmp_path.glob("runs/winrate/*/judgments.jsonl"))
    assert leaks(tmp_path, result.stdout, result.stderr) == []


def test_eval_endpoint_url_credentials_stay_secret(tmp_path):
    with endpoint_stub() as (stub, url):
        model = url.replace("http://", f"http://{USER}:{PASSWORD}@") + "#stub"
        result = run_cli("eval", "-m", model, "--tasks", PROBE, "--limit", 2, "--lengths", 40, "--depths", 0,
                         "--out", tmp_path / "runs")
        stub.default = Reply(400, {"error": {"message": f"no access for {USER}:{PASSWORD} at {model}"}})
        bad = run_cli("eval", "-m", model, "--tasks", PROBE, "--limit", 1, "--lengths", 40, "--depths", 0,
                      "--out", tmp_path / "runs2")
    assert result.returncode == 0, result.stderr
    assert basic_auth_seen(stub)
    [run] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert json.loads((run / "summary.json").read_text())["model"].startswith("http://***@127.0.0.1")
    assert bad.returncode == 2 and "HTTP 400: no access for" in bad.stderr  # the body is shown, scrubbed
    assert leaks(tmp_path, result.stdout, result.stderr, bad.stdout, bad.stderr) == []
