"""A small real task for the run/report tests, loaded the way a user's task file is
(`--tasks tests/runs/probe_tasks.py:probe`): prompts over a length × depth grid, substring scoring."""

from __future__ import annotations

from nevermind.models.requests import GenerationConfig
from nevermind.tasks import Sample, SampleScore, TaskOptions, register_task

PROBE_WORDS = ["apple", "river", "seven", "blue", "stone", "cloud"]


@register_task("probe")
class ProbeTask:
    """Ask the model to repeat a word hidden in filler text; pass when the word is in the answer."""

    name = "probe"
    generation = GenerationConfig(max_new_tokens=8)

    def __init__(self, options: TaskOptions) -> None:
        self.options = options

    def samples(self) -> list[Sample]:
        grid = [(length, depth) for length in self.options.lengths for depth in self.options.depths]
        samples = []
        for i in range(max(len(grid), self.options.limit or 0)):
            length, depth = grid[i % len(grid)]
            word = PROBE_WORDS[(i + self.options.seed) % len(PROBE_WORDS)]
            filler = ["filler"] * (length // 4)
            filler.insert(int(len(filler) * depth / 100), f"The word is {word}.")
            samples.append(Sample(
                id=f"probe-{i}",
                messages=[{"role": "system", "content": "Answer with one word."},
                          {"role": "user", "content": " ".join(filler) + " Which word?"}],
                target={"answer": word},
                metadata={"length": length, "depth": depth},
            ))
        return samples[: self.options.limit]

    def score(self, sample: Sample, output: str) -> SampleScore:
        word = sample.target["answer"]
        found = word in output.lower()
        return SampleScore(
            value=float(found),
            explanation=f"answer {word!r} {'found' if found else 'not found'}",
            matches={"answer": [word] if found else []},
            extra={"empty": float(not output.strip())},
        )
