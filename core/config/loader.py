"""Load ``research_config.yaml`` into a :class:`~core.config.model.ResearchConfig`, or explain every problem.

A run costs real money, so a config is validated completely before anything starts, and every problem
is reported at once with its key path, the line of the YAML it sits on, and a message in plain words.
The YAML is composed into nodes first so that each key path can be traced back to its line.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, cast

import yaml
from pydantic import ValidationError

from core.config.messages import describe, plain_message, trim_loc
from core.config.model import SKIP_REFERENCE_CHECK, AgentDefaults, Loc, ResearchConfig, reference_issues
from core.errors import ResearchOrchestratorError, UserError
from core.prices import has_default_price, known_models
from core.safe_text import first_control, printable

PriceKnown = Callable[[str], bool]

# Bounds that keep a hostile or broken file from exhausting time or memory before validation:
# a real program is a few kilobytes, a few levels deep and a few thousand values.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_DEPTH = 40
MAX_VALUES = 50_000  # counted with every alias expanded (a "billion laughs" file is tiny until then)


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: where it is (key path and 1-based line, when known) and what is wrong."""

    path: str
    line: int | None
    message: str

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(UserError):
    """The config cannot be used; ``issues`` lists every reason, in file order."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(self.format())

    def format(self) -> str:
        """One line per issue, ``file:line: key.path: message``, like a compiler (controls escaped)."""
        return "\n".join(printable(issue.format(self.source)) for issue in self.issues)

    def __str__(self) -> str:
        return self.format()

    def describe(self) -> str:
        return f"invalid config\n{self.format()}"


def load_config(path: str | Path, *, known_models: PriceKnown | None = None) -> ResearchConfig:
    """Read, parse and validate a config file; raise :class:`ConfigError` with every problem found.

    ``known_models(model)`` says whether a model has a built-in price; by default the shipped price
    table of :mod:`core.budget.pricing` is asked.
    """
    source = str(path)
    file = Path(path)
    if not file.exists():
        raise _file_error(source, f"no such file: {source} — create one or pass the path")
    if not file.is_file():
        raise _file_error(source, f"not a file: {source} — pass the path of a YAML config")
    try:
        text = _read_bounded(file).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _file_error(source, f"the file is not UTF-8 text (byte {exc.start}): {source}") from None
    except OSError as exc:
        raise _file_error(source, f"cannot read {source}: {exc.strerror or exc}") from None
    return parse_config(text, source=source, known_models=known_models)


def _read_bounded(file: Path) -> bytes:
    """The file's bytes, refusing FIFOs and devices (a read would never end) and oversized files."""
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        data = b""
        while len(data) <= MAX_CONFIG_BYTES and (chunk := os.read(fd, 1 << 16)):
            data += chunk
        if len(data) > MAX_CONFIG_BYTES:
            raise OSError(0, f"larger than {MAX_CONFIG_BYTES // 1024} KiB, the most a config may be")
        return data
    finally:
        os.close(fd)


def parse_config(
    text: str, *, source: str = "<config>", known_models: PriceKnown | None = None
) -> ResearchConfig:
    """Validate config text (for example the copy saved in a run directory); see :func:`load_config`."""
    if len(text) > MAX_CONFIG_BYTES:
        limit = MAX_CONFIG_BYTES // 1024
        raise _file_error(
            source, f"the config is {len(text) // 1024} KiB; a config may be at most {limit} KiB"
        )
    data, lines, duplicates = _parse_yaml(text, source)
    if not isinstance(data, dict):
        got = "nothing" if data is None else describe(data)
        raise ConfigError(source, [ConfigIssue("", 1, _top_level_message(got))])

    config: ResearchConfig | None = None
    found = list(duplicates) + [_issue(loc, message, lines) for loc, message in _control_issues(data, ())]
    try:
        config = ResearchConfig.model_validate(data, context={SKIP_REFERENCE_CHECK: True})
    except ValidationError as exc:
        found += [
            _issue(trim_loc(error["loc"]), plain_message(error), lines)
            for error in exc.errors(include_url=False)
        ]
    found += [_issue(loc, message, lines) for loc, message in reference_issues(data.get("layers"))]
    found += [_issue(loc, message, lines) for loc, message in _price_issues(data, known_models)]
    if found or config is None:
        raise ConfigError(source, _in_file_order(found))
    return config


def validate_command(config_path: str, out: TextIO) -> int:
    """The ``validate`` subcommand: a summary and exit code 0, or every issue and exit code 2."""
    shown = printable(config_path)  # a file name can hold escape sequences
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(exc.format(), file=out)
        count = len(exc.issues)
        print(f"✗ {shown}: {count} problem{'s' if count != 1 else ''}", file=out)
        return 2
    except Exception as exc:  # a bug in a check must still read as a message, never a traceback
        print(f"✗ {shown}: could not validate: {type(exc).__name__}: {printable(str(exc))}", file=out)
        return 2
    agents = config.agents()
    print(f"✓ {shown} is valid: {len(config.layers)} layers, {len(agents)} agents", file=out)
    rows = [("layer", "agent", "model", "turns", "reads")]
    for agent in agents:
        layer = f"{agent.layer} {config.layers[agent.layer - 1].name}"
        rows.append((layer, agent.id, agent.model, str(agent.max_turns), _compact_reads(config, agent.reads)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  " + "  ".join(cells).rstrip(), file=out)
    for warning in [*unknown_model_warnings(config), *report_size_warnings(config)]:
        print(f"⚠ {warning}", file=out)
    return 0


MIN_REPORT_TOKENS = 1024
"""Output a report needs (a summary, findings with their citations, open questions): an answer
allowed fewer, continuations included, is cut and its report marked partial."""


def report_size_warnings(config: ResearchConfig) -> list[str]:
    """A ``max_tokens`` too small for a report: valid (a test may want it), but every report would be
    cut. One warning per key that sets it, naming the agents it binds."""
    continuations = config.defaults.max_tokens_continuations
    small: dict[str, tuple[int, list[str]]] = {}
    for index, layer in enumerate(config.layers):
        for position, agent in enumerate(layer.agents):
            own = agent.max_tokens is not None
            tokens = agent.max_tokens if agent.max_tokens is not None else config.defaults.max_tokens
            if tokens * (1 + continuations) >= MIN_REPORT_TOKENS:
                continue
            key = f"layers[{index}].agents[{position}].max_tokens" if own else "defaults.max_tokens"
            small.setdefault(key, (tokens, []))[1].append(agent.id)
    warnings = []
    for key, (tokens, agents) in small.items():
        most = tokens * (1 + continuations)
        who = printable(", ".join(agents))
        warnings.append(
            f"{key}: {tokens} is too small for a report: with {continuations} continuation(s) an answer "
            f"has at most {most} output tokens, and a report needs about {MIN_REPORT_TOKENS} or more; the "
            f"reports of {who} would be cut and marked partial (raise max_tokens)"
        )
    return warnings


def unknown_model_warnings(config: ResearchConfig) -> list[str]:
    """Models the product does not know (priced under ``pricing.models`` only): the API may answer
    them with 404 ``not_found_error``, which ends the run at its first call. A warning, not an error:
    a new model can be used before the product ships its price."""
    unknown = sorted({agent.model for agent in config.agents() if not has_default_price(agent.model)})
    if not unknown:
        return []
    known = ", ".join(known_models())
    return [
        f"model '{model}' is not one this product knows; check the id. Known models: {known}"
        for model in unknown
    ]


def _compact_reads(config: ResearchConfig, reads: tuple[str, ...]) -> str:
    """Agent ids, with a whole layer shown by its name: ``research, cross-tech``."""
    shown: list[str] = []
    remaining = list(reads)
    for layer in config.layers:
        ids = [agent.id for agent in layer.agents]
        if len(ids) > 1 and all(agent_id in remaining for agent_id in ids):
            shown.append(layer.name)
            remaining = [agent_id for agent_id in remaining if agent_id not in ids]
    return ", ".join(shown + remaining) or "-"


# --- YAML with positions ---------------------------------------------------------------------------


class _Limited(ResearchOrchestratorError):
    """The document is too deep or expands to too much; ``line`` is where (1-based), if known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class _DepthLimit(yaml.composer.Composer):
    """A nesting limit for PyYAML's composer, which recurses once per level."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH or self._nodes > MAX_VALUES:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                too_many = f"more than {MAX_VALUES} values"
                raise _Limited(
                    f"nested more than {MAX_DEPTH} levels deep" if self._depth > MAX_DEPTH else too_many,
                    mark.line + 1,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _BoundedLoader(_DepthLimit, yaml.SafeLoader):
    """PyYAML's safe loader, pure Python, with the nesting limit."""


def _bounded_loader(text: str) -> _BoundedLoader:
    """A safe loader with the nesting limit: events from libyaml when present (about ten times
    faster, so a 1 MiB file is read in well under a second), composed here, in Python, where the
    depth is counted (libyaml's own composer recurses in C, unbounded)."""
    yaml.reader.Reader(text)  # the whole text's characters checked up front (ReaderError)
    try:
        from yaml.cyaml import CParser  # type: ignore[attr-defined]
    except ImportError:
        return _BoundedLoader(text)

    class _FastBoundedLoader(_DepthLimit, CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

        def dispose(self) -> None:
            pass

    return cast(_BoundedLoader, _FastBoundedLoader(text))  # the same interface, a faster parser


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def _check_expansion(root: yaml.Node) -> None:
    """Refuse recursive aliases and documents that expand past :data:`MAX_VALUES` or :data:`MAX_DEPTH`.

    Aliases share nodes, so a tiny file can stand for 10^9 values that validation would walk one
    by one. Sizes are summed over the node graph once (memoised, iteratively), so checking is
    linear in the file, whatever the expansion.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            kids = list(_children(node))
            size[key] = min(MAX_VALUES + 1, 1 + sum(size[id(kid)] for kid in kids))
            depth[key] = 1 + max((depth[id(kid)] for kid in kids), default=0)
            line = node.start_mark.line + 1
            if size[key] > MAX_VALUES:
                raise _Limited(f"its aliases expand the document to more than {MAX_VALUES} values", line)
            if depth[key] > MAX_DEPTH:
                raise _Limited(f"aliases nest the document more than {MAX_DEPTH} levels deep", line)
            continue
        if key in size:
            continue
        if key in depth:  # entered, not left: the node contains itself
            raise _Limited("a recursive alias (a value that contains itself)", node.start_mark.line + 1)
        depth[key] = -1
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node))


def _parse_yaml(text: str, source: str) -> tuple[object, dict[Loc, int], list[ConfigIssue]]:
    """The document, the 1-based line of every key path, and duplicate keys (YAML keeps the last silently)."""
    try:
        loader = _bounded_loader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        message = f"YAML syntax error: {exc.reason} (character {_codepoint(exc.character)})"
        raise ConfigError(source, [ConfigIssue("", line, message)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise _file_error(source, f"the file is empty: {source}")
        _check_expansion(node)
        lines: dict[Loc, int] = {}
        duplicates: list[ConfigIssue] = []
        _index(node, (), lines, duplicates, set())
        data = loader.construct_document(node)
    except _Limited as exc:
        raise ConfigError(source, [ConfigIssue("", exc.line, f"refused: {exc}")]) from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of 5,000 digits
        reason = str(exc).split(";")[0]
        raise ConfigError(source, [ConfigIssue("", None, f"a value cannot be read ({reason})")]) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(source, [_syntax_issue(exc)]) from None
    except yaml.YAMLError as exc:
        raise _file_error(source, f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    return data, lines, duplicates


def _control_issues(value: object, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Every key or text holding a control character (ESC, BEL...): names are shown on terminals."""
    if isinstance(value, str):
        char = first_control(value)
        if char is not None:
            yield loc, f"contains the control character {_codepoint(ord(char))}; remove it"
    elif isinstance(value, dict):
        for key, item in value.items():
            key_loc = (*loc, str(key))
            if isinstance(key, str) and first_control(key) is not None:
                yield from _control_issues(key, key_loc)
            yield from _control_issues(item, key_loc)
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from _control_issues(item, (*loc, number))


def _codepoint(character: object) -> str:
    return f"U+{character:04X}" if isinstance(character, int) else repr(character)


def _syntax_issue(exc: yaml.MarkedYAMLError) -> ConfigIssue:
    mark, context_mark = exc.problem_mark, exc.context_mark
    at = f" at column {mark.column + 1}" if mark is not None else ""
    message = f"YAML syntax error{at}: {exc.problem or exc.context or 'unreadable'}"
    if exc.problem and exc.context:
        started = f" started on line {context_mark.line + 1}" if context_mark is not None else ""
        message += f" ({exc.context}{started})"
    where = mark or context_mark
    return ConfigIssue("", where.line + 1 if where is not None else None, message)


def _index(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], duplicates: list[ConfigIssue], seen: set[int]
) -> None:
    if id(node) in seen:  # a recursive alias; its positions are already recorded
        return
    seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in first_line:
                message = (
                    f"key '{key}' appears twice (first on line {first_line[key]}); only one would be used"
                )
                duplicates.append(ConfigIssue(format_path((*loc, key)), line, message))
                continue
            first_line[key] = line
            lines[(*loc, key)] = line
            _index(value_node, (*loc, key), lines, duplicates, seen)
    elif isinstance(node, yaml.SequenceNode):
        for number, item in enumerate(node.value):
            lines[(*loc, number)] = item.start_mark.line + 1
            _index(item, (*loc, number), lines, duplicates, seen)


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of ``loc``, or of its nearest ancestor present in the file (a missing key's parent)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _issue(loc: Loc, message: str, lines: dict[Loc, int]) -> ConfigIssue:
    return ConfigIssue(format_path(loc), _line_of(loc, lines), message)


def format_path(loc: Loc) -> str:
    """``("layers", 1, "agents", 0, "max_turns")`` -> ``layers[1].agents[0].max_turns``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _in_file_order(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda issue: issue.line or 0)


def _file_error(source: str, message: str) -> ConfigError:
    return ConfigError(source, [ConfigIssue("", None, message)])


def _top_level_message(got: str) -> str:
    sections = ", ".join(ResearchConfig.model_fields)
    return f"the top level must be a mapping of sections ({sections}), got {got}"


# --- prices ------------------------------------------------------------------------------------------


def _price_issues(data: Mapping[str, object], known_models: PriceKnown | None) -> list[tuple[Loc, str]]:
    """Every model named in the config that has neither a built-in price nor one under ``pricing.models``.

    A run with an unpriced model could not be held to its budget, so this is a config error.
    """
    has_price = known_models or has_default_price
    pricing = data.get("pricing")
    priced = pricing.get("models") if isinstance(pricing, Mapping) else None
    configured = set(priced) if isinstance(priced, Mapping) else set()
    issues: list[tuple[Loc, str]] = []
    for loc, model in _named_models(data):
        if model not in configured and not has_price(model):
            issues.append(
                (
                    loc,
                    f"no price known for model '{model}'; add it under pricing.models.{model} "
                    "(input and output dollars per million tokens)",
                )
            )
    return issues


def _named_models(data: Mapping[str, object]) -> list[tuple[Loc, str]]:
    defaults = data.get("defaults")
    default_model = defaults.get("model") if isinstance(defaults, Mapping) else None
    if default_model is None:
        default_model = AgentDefaults.model_fields["model"].default
    named: list[tuple[Loc, str]] = []
    if isinstance(default_model, str):
        named.append((("defaults", "model"), default_model))
    layers = data.get("layers")
    for li, layer in enumerate(layers if isinstance(layers, list) else []):
        agents = layer.get("agents") if isinstance(layer, Mapping) else None
        for ai, agent in enumerate(agents if isinstance(agents, list) else []):
            model = agent.get("model") if isinstance(agent, Mapping) else None
            if isinstance(model, str):
                named.append((("layers", li, "agents", ai, "model"), model))
    return named
