"""Loading a config: every problem reported at once, each with its key path, line and plain words."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config.loader import (
    ConfigError,
    ConfigIssue,
    format_path,
    load_config,
    parse_config,
    report_size_warnings,
    validate_command,
)
from core.prices import SHIPPED_PRICES

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "research_config.yaml"

# Line numbers below refer to this text (line 1 is "program:").
VALID = """\
program:
  name: demo
  question: Does it work?
layers:
  - name: research
    agents:
      - id: market
        brief: Map the market.
      - id: chemistry
        brief: Assess the chemistry.
  - name: synthesis
    agents:
      - id: final
        brief: Write it up.
        reads: [market, chemistry]
"""


def every_model_priced(model: str) -> bool:
    return True


def write(tmp_path: Path, text: str, name: str = "research_config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def issues_of(tmp_path: Path, text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), known_models=every_model_priced)
    return caught.value.issues


def only_issue(tmp_path: Path, text: str) -> ConfigIssue:
    issues = issues_of(tmp_path, text)
    assert len(issues) == 1, issues
    return issues[0]


class TestTheExampleConfig:
    def test_loads_with_eight_agents_across_three_layers(self) -> None:
        config = load_config(EXAMPLE)
        agents = config.agents()
        assert [layer.name for layer in config.layers] == ["research", "cross-analysis", "synthesis"]
        assert [(a.layer, a.id) for a in agents] == [
            (1, "market"),
            (1, "chemistry"),
            (1, "supply-chain"),
            (1, "policy"),
            (1, "patents"),
            (2, "cross-tech"),
            (2, "cross-market"),
            (3, "synthesis"),
        ]

    def test_resolves_reads_to_earlier_agents(self) -> None:
        config = load_config(EXAMPLE)
        assert config.agent("market").reads == ()
        assert config.agent("cross-tech").reads == ("market", "chemistry", "supply-chain")
        assert config.agent("cross-market").reads == ("market", "policy", "patents")
        assert config.agent("synthesis").reads == (
            "market",
            "chemistry",
            "supply-chain",
            "policy",
            "patents",
            "cross-tech",
            "cross-market",
        )

    def test_accepts_the_older_budget_keys(self) -> None:
        budget = load_config(EXAMPLE).execution_settings.budget
        assert budget.max_cost_usd == 40.0
        assert budget.max_searches == 500


def test_older_budget_keys_are_accepted_on_their_own(tmp_path: Path) -> None:
    text = VALID + "execution_settings:\n  budget:\n    max_searches: 12\n    max_cost_usd: 2.5\n"
    config = load_config(write(tmp_path, text), known_models=every_model_priced)
    assert config.execution_settings.budget.max_searches == 12
    assert config.execution_settings.budget.max_cost_usd == 2.5


class TestFieldErrors:
    def test_unknown_key_is_named_with_the_closest_valid_key(self, tmp_path: Path) -> None:
        issue = only_issue(
            tmp_path, VALID.replace("        brief: Map the market.", "        max_turn: 3\n        brief: x")
        )
        assert issue == ConfigIssue(
            "layers[0].agents[0].max_turn", 8, "unknown key 'max_turn' (did you mean 'max_turns'?)"
        )

    def test_unknown_key_without_a_close_match_lists_the_valid_keys(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID + "simulator:\n  colour: blue\n")
        assert issue.path == "simulator.colour"
        assert issue.line == 17
        assert issue.message.startswith("unknown key 'colour' (valid keys: seed, latency_ms, ")

    def test_unknown_budget_key_is_an_error_not_ignored(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID + "execution_settings:\n  budget:\n    max_cost: 5\n")
        assert issue == ConfigIssue(
            "execution_settings.budget.max_cost",
            18,
            "unknown key 'max_cost' (did you mean 'max_cost_usd'?)",
        )

    def test_a_misplaced_section_says_where_it_belongs(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID + "budget:\n  max_cost_usd: 5\n")
        assert issue == ConfigIssue(
            "budget", 16, "unknown key 'budget' here; it belongs under execution_settings"
        )

    def test_a_misplaced_agent_setting_says_where_it_belongs(self, tmp_path: Path) -> None:
        text = VALID.replace(
            "        brief: Write it up.", "        brief: x\n        web_search: {max_uses: 2}"
        )
        issue = only_issue(tmp_path, text)
        assert issue == ConfigIssue(
            "layers[1].agents[0].web_search", 15, "unknown key 'web_search' here; it belongs under defaults"
        )

    def test_wrong_type(self, tmp_path: Path) -> None:
        issue = only_issue(
            tmp_path,
            VALID.replace("        brief: Write it up.", "        brief: Write.\n        max_turns: abc"),
        )
        assert issue == ConfigIssue("layers[1].agents[0].max_turns", 15, "expected an integer, got 'abc'")

    def test_wrong_type_for_a_number(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID + "execution_settings:\n  budget:\n    max_cost_usd: lots\n")
        assert issue == ConfigIssue(
            "execution_settings.budget.max_cost_usd", 18, "expected a number, got 'lots'"
        )

    def test_out_of_range_value(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID + "execution_settings:\n  max_concurrent_agents: 0\n")
        assert issue == ConfigIssue(
            "execution_settings.max_concurrent_agents", 17, "must be greater than 0, got 0"
        )

    def test_a_negative_stop_grace_is_refused_naming_the_key(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID + "execution_settings:\n  stop_grace_s: -5\n")
        assert issue == ConfigIssue("execution_settings.stop_grace_s", 17, "must be at least 0, got -5")

    def test_missing_required_field_points_at_its_parent(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID.replace("        brief: Assess the chemistry.\n", ""))
        assert issue == ConfigIssue("layers[0].agents[1].brief", 9, "missing required field")

    def test_missing_top_level_section_has_no_line(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID.split("layers:")[0])
        assert issue == ConfigIssue("layers", None, "missing required field")

    def test_choice_with_a_suggestion(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID + "defaults:\n  caching:\n    ttl: 1hr\n")
        assert issue == ConfigIssue(
            "defaults.caching.ttl", 18, "expected one of 5m, 1h; got '1hr' (did you mean '1h'?)"
        )

    def test_invalid_agent_id(self, tmp_path: Path) -> None:
        issue = only_issue(
            tmp_path, VALID.replace("id: market", "id: Market Analysis").replace("[market,", "[")
        )
        assert issue.path == "layers[0].agents[0].id"
        assert issue.line == 7
        assert issue.message.startswith("'Market Analysis' is not a valid name: use lowercase letters")

    def test_both_domain_filters(self, tmp_path: Path) -> None:
        text = (
            VALID + "defaults:\n  web_search:\n    allowed_domains: [a.org]\n    blocked_domains: [b.org]\n"
        )
        issue = only_issue(tmp_path, text)
        assert issue == ConfigIssue(
            "defaults.web_search",
            17,
            "give allowed_domains or blocked_domains, not both (the API rejects both)",
        )

    def test_duplicate_yaml_key_is_not_silently_dropped(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID.replace("  name: demo\n", "  name: demo\n  name: other\n"))
        assert issue == ConfigIssue(
            "program.name", 3, "key 'name' appears twice (first on line 2); only one would be used"
        )


class TestReferenceErrors:
    def test_reference_to_an_unknown_agent_suggests_the_closest(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID.replace("[market, chemistry]", "[markett, chemistry]"))
        assert issue == ConfigIssue(
            "layers[1].agents[0].reads[0]",
            15,
            "agent 'final' reads 'markett', which is not an agent or layer (did you mean 'market'?)",
        )

    def test_reference_to_a_later_layer(self, tmp_path: Path) -> None:
        issue = only_issue(
            tmp_path,
            VALID.replace("        brief: Map the market.", "        brief: x\n        reads: [final]"),
        )
        assert issue == ConfigIssue(
            "layers[0].agents[0].reads[0]",
            9,
            "agent 'market' in layer 1 reads 'final' from layer 2: an agent can only read earlier layers",
        )

    def test_reference_to_its_own_layer_by_name(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID.replace("[market, chemistry]", "[synthesis]"))
        assert issue == ConfigIssue(
            "layers[1].agents[0].reads[0]",
            15,
            "agent 'final' in layer 2 reads layer 'synthesis' (its own layer): "
            "an agent can only read earlier layers",
        )

    def test_duplicate_agent_id(self, tmp_path: Path) -> None:
        issue = only_issue(
            tmp_path, VALID.replace("id: chemistry", "id: market").replace(", chemistry]", "]")
        )
        assert issue == ConfigIssue(
            "layers[0].agents[1].id",
            9,
            "agent id 'market' is used twice (also layers[0].agents[0]); agent ids must be unique",
        )


class TestFileProblems:
    def test_missing_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.yaml"
        with pytest.raises(ConfigError) as caught:
            load_config(missing)
        assert caught.value.issues == [
            ConfigIssue("", None, f"no such file: {missing} — create one or pass the path")
        ]

    @pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n"])
    def test_empty_file(self, tmp_path: Path, text: str) -> None:
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.issues == [ConfigIssue("", None, f"the file is empty: {path}")]

    def test_yaml_syntax_error_gives_line_and_column(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID.replace("reads: [market, chemistry]", "reads: [market, chemistry"))
        assert issue.path == ""
        assert issue.line == 16
        assert issue.message.startswith("YAML syntax error at column 1: ")  # (libyaml: "did not find ...")
        assert "expected ',' or ']'" in issue.message
        assert "flow sequence started on line 15" in issue.message

    def test_a_control_character_is_reported_on_its_line(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, VALID.replace("Map the market.", "Map the\x1f market."))
        assert issue == ConfigIssue(
            "", 8, "YAML syntax error: special characters are not allowed (character U+001F)"
        )

    def test_top_level_must_be_a_mapping(self, tmp_path: Path) -> None:
        issue = only_issue(tmp_path, "- program\n- layers\n")
        assert issue.line == 1
        assert issue.message.startswith(
            "the top level must be a mapping of sections (program, defaults, layers"
        )
        assert issue.message.endswith("got a list")

    def test_a_directory_is_not_a_config(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="not a file"):
            load_config(tmp_path)


def test_every_error_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = (
        VALID.replace("  name: demo\n", "")
        .replace("        brief: Map the market.", "        brief: x\n        max_turns: many")
        .replace("[market, chemistry]", "[market, chemistry, nobody]")
        + "execution_settings:\n  budgett: {}\n"
    )
    issues = issues_of(tmp_path, text)
    assert [(i.path, i.line) for i in issues] == [
        ("program.name", 1),
        ("layers[0].agents[0].max_turns", 8),
        ("layers[1].agents[0].reads[2]", 15),
        ("execution_settings.budgett", 17),
    ]


def test_error_text_is_one_compiler_style_line_per_issue(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("  name: demo\n", "").replace("[market,", "[markett,"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, known_models=every_model_priced)
    assert str(caught.value).splitlines() == [
        f"{path}:1: program.name: missing required field",
        f"{path}:14: layers[1].agents[0].reads[0]: agent 'final' reads 'markett', "
        "which is not an agent or layer (did you mean 'market'?)",
    ]
    assert caught.value.format() == str(caught.value)


class TestPrices:
    def test_an_unpriced_model_is_an_error_at_the_key_that_names_it(self, tmp_path: Path) -> None:
        text = VALID.replace(
            "        brief: Write it up.", "        brief: x\n        model: claude-mystery-9"
        )
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, text), known_models=lambda model: model == "claude-sonnet-5")
        assert caught.value.issues == [
            ConfigIssue(
                "layers[1].agents[0].model",
                15,
                "no price known for model 'claude-mystery-9'; add it under pricing.models.claude-mystery-9 "
                "(input and output dollars per million tokens)",
            )
        ]

    def test_the_default_model_is_checked_too(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config(
                write(tmp_path, VALID + "defaults:\n  model: house-model\n"), known_models=lambda m: False
            )
        assert [(i.path, i.line) for i in caught.value.issues] == [("defaults.model", 17)]

    def test_a_price_in_the_config_makes_a_model_usable(self, tmp_path: Path) -> None:
        text = (
            VALID
            + "defaults:\n  model: house-model\npricing:\n  models:\n    house-model: {input: 1, output: 2}\n"
        )
        config = load_config(write(tmp_path, text), known_models=lambda m: False)
        assert config.agent("final").model == "house-model"

    @given(model=st.sampled_from(sorted(SHIPPED_PRICES)) | st.from_regex(r"house-[a-z]{1,8}", fullmatch=True))
    @settings(max_examples=25, deadline=None)
    def test_the_default_lookup_is_the_shipped_price_table(self, model: str) -> None:
        text = VALID + f"defaults:\n  model: {model}\n"
        if model in SHIPPED_PRICES:
            assert parse_config(text).defaults.model == model
        else:
            with pytest.raises(ConfigError, match=f"no price known for model '{model}'"):
                parse_config(text)


def test_parse_config_validates_text_with_a_named_source() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "program: {}\nlayers: []\n", source="runs/r1/config.yaml", known_models=every_model_priced
        )
    assert caught.value.format().splitlines() == [
        "runs/r1/config.yaml:1: program.name: missing required field",
        "runs/r1/config.yaml:1: program.question: missing required field",
        "runs/r1/config.yaml:2: layers: must not be empty",
    ]


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        (("layers", 1, "agents", 0, "max_turns"), "layers[1].agents[0].max_turns"),
        (("pricing", "models", "claude-x", "input"), "pricing.models.claude-x.input"),
        (("pricing", "models", "vendor/model 1.5"), "pricing.models['vendor/model 1.5']"),
        ((), ""),
    ],
)
def test_format_path(loc: tuple[str | int, ...], expected: str) -> None:
    assert format_path(loc) == expected


class TestValidateCommand:
    def test_a_valid_config_prints_a_summary_and_returns_0(self) -> None:
        out = io.StringIO()
        assert validate_command(str(EXAMPLE), out) == 0
        lines = out.getvalue().splitlines()
        assert lines[0] == f"✓ {EXAMPLE} is valid: 3 layers, 8 agents"
        assert lines[1].split() == ["layer", "agent", "model", "turns", "reads"]
        assert len(lines) == 2 + 8
        assert lines[-1].split() == [
            "3",
            "synthesis",
            "synthesis",
            "claude-sonnet-5",
            "2",
            "research,",
            "cross-analysis",
        ]

    def test_an_invalid_config_prints_each_issue_and_returns_2(self, tmp_path: Path) -> None:
        path = write(tmp_path, VALID.replace("question: Does it work?", "questoin: Does it work?"))
        out = io.StringIO()
        assert validate_command(str(path), out) == 2
        assert out.getvalue().splitlines() == [
            f"{path}:1: program.question: missing required field",
            f"{path}:3: program.questoin: unknown key 'questoin' (did you mean 'question'?)",
            f"✗ {path}: 2 problems",
        ]
        assert "Traceback" not in out.getvalue()

    def test_a_model_the_product_does_not_know_is_a_warning_listing_the_known_ones(
        self, tmp_path: Path
    ) -> None:
        text = (
            VALID
            + "defaults:\n  model: house-model\npricing:\n  models:\n    house-model: {input: 1, output: 2}\n"
        )
        out = io.StringIO()

        assert validate_command(str(write(tmp_path, text)), out) == 0
        (warning,) = [line for line in out.getvalue().splitlines() if line.startswith("⚠")]
        assert "'house-model' is not one this product knows" in warning
        assert all(model in warning for model in SHIPPED_PRICES)

    def test_a_max_tokens_too_small_for_a_report_is_a_warning_naming_its_key_and_agents(
        self, tmp_path: Path
    ) -> None:
        text = (
            VALID.replace("      - id: chemistry\n", "      - id: chemistry\n        max_tokens: 4000\n")
            + "defaults:\n  max_tokens: 16\n"
        )
        out = io.StringIO()
        assert validate_command(str(write(tmp_path, text)), out) == 0  # valid: a warning, not an error
        (warning,) = [line for line in out.getvalue().splitlines() if line.startswith("⚠")]
        assert warning.startswith("⚠ defaults.max_tokens: 16 is too small for a report")
        assert "at most 48 output tokens" in warning and "market" in warning and "chemistry" not in warning
        roomy = load_config(write(tmp_path, text.replace("max_tokens: 16", "max_tokens: 600")))
        assert report_size_warnings(roomy) == []  # 600 and two continuations: 1,800 tokens an answer

    def test_known_models_give_no_warning(self) -> None:
        out = io.StringIO()
        assert validate_command(str(EXAMPLE), out) == 0
        assert "⚠" not in out.getvalue()

    def test_a_missing_file_returns_2_without_a_traceback(self, tmp_path: Path) -> None:
        out = io.StringIO()
        assert validate_command(str(tmp_path / "absent.yaml"), out) == 2
        assert "no such file" in out.getvalue()
        assert "Traceback" not in out.getvalue()


scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=8)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["program", "layers", "agents", "id", "reads", "name", "x", 1]), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(documents)
def test_any_document_is_a_config_or_a_config_error(document: object) -> None:
    try:
        parse_config(yaml.safe_dump(document), known_models=every_model_priced)
    except ConfigError as error:
        assert error.issues and all(
            isinstance(issue.message, str) and issue.message for issue in error.issues
        )


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(text, known_models=every_model_priced)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_mangling_any_value_of_a_valid_config_never_escapes_as_a_crash(data: st.DataObject) -> None:
    document = yaml.safe_load(VALID)
    paths = list(_leaf_paths(document))
    path = data.draw(st.sampled_from(paths))
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = data.draw(
        scalars | st.lists(scalars, max_size=2) | st.dictionaries(st.text(max_size=4), scalars)
    )
    try:
        parse_config(yaml.safe_dump(document), known_models=every_model_priced)
    except ConfigError as error:
        assert all(issue.line is None or issue.line >= 1 for issue in error.issues)


def _leaf_paths(node: object, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
    if items is None:
        yield prefix
        return
    for key, value in items:
        yield (*prefix, key)
        yield from _leaf_paths(value, (*prefix, key))
