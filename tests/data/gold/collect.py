"""Collect real model outputs from `nevermind eval` run directories into the gold file (labels kept).

How the gold outputs were made (greedy decoding, so they are reproducible on CPU):

    G="--tasks needle,override,moderation,jailbreak --lengths 100,250,500,1000 --depths 0,50,100"
    for m in smollm2-135m-instruct gemma-3-270m; do
        nevermind eval -m $m $G --seed 0 --batch-size 8 --out gold-runs
        nevermind eval -m $m --tasks jailbreak --seed 1 --batch-size 6 --out gold-runs
    done
    nevermind eval -m gemma-3-270m --adapters rules $G --seed 0 --batch-size 8 --out gold-runs
    nevermind eval -m smollm2-135m-instruct --tasks jailbreak --seed 2 --batch-size 6 --out gold-runs
    python tests/data/gold/collect.py gold-runs tests/data/gold/gold.jsonl [--labels labels.tsv]

Each record holds the prompt (messages), the task's current target for that sample, the output,
the model and adapters, and — once a person has read it against RUBRIC.md — `label` and `reason`.
Re-collecting keeps every existing label (matched by `gid`) and never invents one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from nevermind.tasks import TaskOptions, build_task


def current_targets(task: str, seed: int) -> dict[str, dict]:
    """Sample id → (messages, target) as the task builds them today (needle keeps its stored target)."""
    if task == "needle":
        return {}
    return {s.id: {"messages": s.messages, "target": s.target} for s in build_task(task, TaskOptions(seed=seed)).samples()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="Output directory of the eval runs.")
    parser.add_argument("gold", type=Path, help="The gold JSONL file to write (labels in it are kept).")
    parser.add_argument("--labels", type=Path, action="append", default=[],
                        help="TSV lines `gid<TAB>label JSON<TAB>reason` written while reading the outputs.")
    args = parser.parse_args()
    old = {}
    if args.gold.exists():
        old = {r["gid"]: r for r in map(json.loads, args.gold.read_text(encoding="utf-8").splitlines()) if r}
    for path in args.labels:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                gid, label, reason = line.split("\t")
                old.setdefault(gid, {"gid": gid}).update(label=json.loads(label), reason=reason)
    records, cache = [], {}
    for run in sorted(p for p in args.runs.iterdir() if (p / "samples.jsonl").is_file()):
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        adapters = list(config.get("adapters") or [])
        tag = "+".join(adapters) or "plain"
        for line in (run / "samples.jsonl").read_text(encoding="utf-8").splitlines():
            sample = json.loads(line)
            key = (sample["task"], config["seed"])
            if key not in cache:
                cache[key] = current_targets(*key)
            now = cache[key].get(sample["id"])
            if now is not None and now["messages"] != sample["messages"]:
                raise SystemExit(f"{run.name}/{sample['id']}: the task's prompt changed since this run")
            gid = f"{config['model']}/{tag}/seed{config['seed']}/{sample['id']}"
            record = {
                "gid": gid, "task": sample["task"], "model": config["model"], "adapters": adapters,
                "seed": config["seed"], "sample_id": sample["id"], "messages": sample["messages"],
                "target": now["target"] if now else sample["target"], "metadata": sample["metadata"],
                "output": sample["output"], "finish_reason": sample["finish_reason"],
            }  # fmt: skip
            if gid in old and "label" in old[gid]:
                record["label"], record["reason"] = old[gid]["label"], old[gid]["reason"]
            records.append(record)
    records.sort(key=lambda r: (r["task"], r["model"], "+".join(r["adapters"]), r["seed"], r["sample_id"]))
    args.gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    unknown = {gid for gid, r in old.items() if "label" in r} - {r["gid"] for r in records}
    if unknown:
        raise SystemExit(f"labels for outputs not in the runs: {sorted(unknown)[:5]}")
    print(f"{len(records)} records, {sum('label' in r for r in records)} labelled → {args.gold}")


if __name__ == "__main__":
    main()
