"""nevermind: measure and shape how language models follow instructions that conflict."""

from nevermind.errors import NevermindError
from nevermind.models import (
    BUNDLED,
    GenerateRequest,
    Generation,
    GenerationConfig,
    LanguageModel,
    ScoreRequest,
    ScoreResult,
    load_model,
)

__version__ = "0.1.0"

__all__ = [
    "BUNDLED",
    "GenerateRequest",
    "Generation",
    "GenerationConfig",
    "LanguageModel",
    "NevermindError",
    "ScoreRequest",
    "ScoreResult",
    "__version__",
    "load_model",
]
