"""The models the simulated API serves: ids (aliases and dated snapshots), context windows, output caps.

An unknown model gets the API's 404 ``not_found_error``; a response names the dated snapshot of an
alias (``claude-haiku-4-5`` answers as ``claude-haiku-4-5-20251001``), as the real API does. From the
4.6 generation on, the undated ids are themselves pinned snapshots and are echoed unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

ONE_MILLION = 1_000_000
K200 = 200_000


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the simulator enforces about one model."""

    snapshot: str
    """The id a response reports."""
    context_window: int
    max_output_tokens: int


def _model(snapshot: str, window: int = ONE_MILLION, max_output: int = 128_000) -> ModelInfo:
    return ModelInfo(snapshot, window, max_output)


_MODELS: dict[str, ModelInfo] = {
    name: _model(name)
    for name in (
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-opus-5-5",
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-5",
        "claude-sonnet-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
    )
}
_MODELS["claude-sonnet-4-6"] = _model("claude-sonnet-4-6", max_output=64_000)
for _alias, _snapshot in (
    ("claude-opus-4-5", "claude-opus-4-5-20251101"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    ("claude-haiku-4-5", "claude-haiku-4-5-20251001"),
):
    _MODELS[_alias] = _MODELS[_snapshot] = _model(_snapshot, K200, 64_000)

KNOWN_MODELS: tuple[str, ...] = tuple(sorted(_MODELS))


def model_info(model: str) -> ModelInfo | None:
    """The model's facts, or ``None`` when the API would not know it (a 404)."""
    return _MODELS.get(model)


def context_window(model: str, override: int | None = None) -> int:
    """The model's context window in tokens; ``override`` (from settings) wins."""
    if override is not None:
        return override
    info = _MODELS.get(model)
    return info.context_window if info is not None else K200
