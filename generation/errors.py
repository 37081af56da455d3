"""Errors from prompting and answering; each message names the backend or model and a way out."""


class GenerationError(Exception):
    """Base class: an answer could not be generated. `reason` is a short machine-readable kind."""

    reason = "generation"


class BackendUnavailable(GenerationError):
    """The LLM server cannot be reached (not running, wrong address)."""

    reason = "backend-unavailable"


class ModelMissing(GenerationError):
    """The model is not on the server (not pulled) or its file is missing or damaged."""

    reason = "model-missing"


class BackendTimeout(GenerationError):
    """The backend did not answer (or stopped streaming) within the time limit."""

    reason = "timeout"


class PromptTooLong(GenerationError):
    """The question alone does not fit the model's context window."""

    reason = "prompt-too-long"


class QueueFull(GenerationError):
    """Too many questions are waiting for the model."""

    reason = "queue-full"


class Cancelled(GenerationError):
    """The caller went away (cancelled the channel) before the answer was finished."""

    reason = "cancelled"
