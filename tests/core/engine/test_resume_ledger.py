"""The ledger never goes backwards across the attempts of a run, whatever a resume finds lost.

Real processes: a capped run whose newest checkpoints are damaged or deleted before each of three
resumes never bills past its cap (by the journal's charges, which count every call the API billed),
and each resume names what was lost; a run killed (SIGKILL) with calls in flight, then resumed with
the agent or its model's price gone from the config, charges those calls as they were sent and
ends without a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.budget.pricing import PriceTable, cost_at
from core.config.model import PricingSettings
from core.engine.recovery import CHARGE_KINDS
from core.persistence.checkpoints import CheckpointStore
from core.persistence.rundir import RunDir
from core.reports.verify import verify_run
from core.usage import TokenUsage
from tests.core import programs
from tests.core.engine.test_inflight import journal
from tests.waits import wait_until

CAP = 0.30
MODEL = "claude-sonnet-5"
HOUSE_PRICE = {"input": 30.0, "output": 150.0}  # 15x the price list's: a charge at it is told apart


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def charged_usd(run_dir: Path) -> float:
    """Every dollar the run's attempts were charged, by the journal (each event is one call billed)."""
    return sum(float(e["cost_usd"]) for e in journal(run_dir) if e["kind"] in CHARGE_KINDS)


def summary_of(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads(run_dir.joinpath("summary.json").read_text()))


def lose(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
        return
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the checksum no longer matches
    path.write_bytes(bytes(data))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["damaged", "deleted"])
def test_resumes_after_the_newest_checkpoints_are_lost_never_bill_past_the_cap_and_name_the_loss(
    tmp_path: Path, how: str
) -> None:
    data = programs.program(
        [programs.agent("north"), programs.agent("south")],
        max_turns=5,
        execution={"budget": {"max_cost_usd": CAP}},
    )
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    first = cli(tmp_path, "run", str(config), "--headless", "--simulate", "--runs-dir", str(runs))
    assert first.returncode == 3, first.stderr  # the cap stopped it
    (run_dir,) = runs.iterdir()

    for _ in range(3):
        # the two newest that still verify (one damaged before stays damaged: flipping its byte
        # again would mend it)
        newest = [info.path for info in CheckpointStore(run_dir).list() if info.ok][-2:]
        for path in newest:
            lose(path, how)
        resume = cli(tmp_path, "resume", run_dir.name, "--headless", "--runs-dir", str(runs))

        assert resume.returncode == 3, resume.stderr
        assert "Traceback" not in resume.stderr + resume.stdout
        for path in newest:  # named, with how it was lost and what it held by the journal
            assert f"{path.stem} ({how}" in resume.stderr
        assert "held $" in resume.stderr
        assert charged_usd(run_dir) <= CAP  # across every attempt so far
        summary = summary_of(run_dir)
        assert summary["cost_usd"] == pytest.approx(charged_usd(run_dir), abs=1e-5)  # nothing forgotten
        # verify finds the lost checkpoints, and nothing else: the turns done again were billed
        # again, and the summary's billed dollars and searches count them as the journal does.
        problems = verify_run(RunDir(run_dir)).problems
        assert problems and all(p.place.startswith("checkpoints/") for p in problems), problems


def kill_with_calls_in_flight(tmp_path: Path, simulator: str) -> tuple[Path, Path, dict[str, str]]:
    """Run north and south (priced by a house row of the config) until both have written their
    second call ahead and not checkpointed it, then SIGKILL it: both have a call in flight."""
    data = programs.program([programs.agent("north"), programs.agent("south")], max_turns=3)
    data["defaults"]["model"] = MODEL
    data["pricing"] = {"models": {MODEL: HOUSE_PRICE}}
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-resume-ledger-test", "ANTHROPIC_BASE_URL": simulator}
    run = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "run", str(config), "--headless", "--runs-dir", str(runs)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def second_calls_in_flight() -> bool:  # written ahead, and not yet checkpointed as done
        dirs = list(runs.iterdir()) if runs.exists() else []
        if not dirs:
            return False
        run = RunDir(dirs[0])
        try:
            sent = {a: e.get("turn") for a, e in entries(dirs[0]).items()}
        except (OSError, ValueError):  # an entry being replaced
            return False
        done = {p.name.split("-")[1] for p in run.checkpoints_dir.glob("*-t002.json")}
        return sent == {"north": 2, "south": 2} and not done

    try:
        wait_until(second_calls_in_flight, "both agents' second calls in flight", 60, poll=0.02)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(10)
    (run_dir,) = runs.iterdir()
    return runs, run_dir, env


def edit_config(run_dir: Path, change: Any) -> None:
    path = RunDir(run_dir).config_copy_path
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def entries(run_dir: Path) -> dict[str, dict[str, Any]]:
    folder = RunDir(run_dir).inflight_dir
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def rewrite_entries(run_dir: Path, change: Any) -> None:
    for agent_id, entry in entries(run_dir).items():
        change(entry)
        RunDir(run_dir).inflight_dir.joinpath(f"{agent_id}.json").write_text(json.dumps(entry))


def drop_pricing(data: dict[str, Any]) -> None:
    del data["pricing"]


def drop_south(data: dict[str, Any]) -> None:
    data["layers"][0]["agents"] = [a for a in data["layers"][0]["agents"] if a["id"] != "south"]


def lost_charges(run_dir: Path) -> dict[str, float]:
    return {
        str(e["agent_id"]): float(e["cost_usd"])
        for e in journal(run_dir)
        if e["kind"] == "attempt_charged" and e["outcome"] == "process_ended"
    }


def worst(entry: dict[str, Any]) -> TokenUsage:
    return TokenUsage.from_dict(entry["worst_usage"])


@pytest.mark.timeout(180)
def test_a_call_in_flight_of_an_agent_removed_from_the_config_is_charged_and_still_counted(
    tmp_path: Path, slow_simulator: str
) -> None:
    runs, run_dir, env = kill_with_calls_in_flight(tmp_path, slow_simulator)
    written = entries(run_dir)
    edit_config(run_dir, drop_south)

    resume = cli(tmp_path, "resume", run_dir.name, "--headless", "--runs-dir", str(runs), env=env)

    assert resume.returncode == 0, resume.stderr
    assert "Traceback" not in resume.stderr + resume.stdout
    charged = lost_charges(run_dir)
    assert set(charged) == {"north", "south"}  # each had a call in flight
    south = written["south"]
    assert charged["south"] == pytest.approx(cost_at(south["prices"], worst(south)))  # as it was sent
    assert "a call of south (an agent no longer in the config) in flight" in resume.stderr
    summary = summary_of(run_dir)
    rows = {a["id"]: a for a in summary["agents"]}
    assert rows["south"]["cost_usd"] >= charged["south"]  # its spend stays in the run's dollars
    assert rows["south"]["unconfirmed_usd"] >= charged["south"]  # a bound: its usage never arrived
    assert summary["unconfirmed_usd"] == pytest.approx(sum(charged.values()), abs=1e-5)
    assert summary["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in summary["agents"]), abs=1e-5)
    assert summary["cost_usd"] == pytest.approx(charged_usd(run_dir), abs=1e-5)
    assert verify_run(RunDir(run_dir)).problems == []  # south's checkpoint holds its charge too


@pytest.mark.timeout(180)
@pytest.mark.parametrize("entry_format", ["recorded_prices", "before_prices_were_recorded"])
def test_a_call_in_flight_whose_models_price_is_gone_from_the_config_is_charged_without_a_traceback(
    tmp_path: Path, slow_simulator: str, entry_format: str
) -> None:
    runs, run_dir, env = kill_with_calls_in_flight(tmp_path, slow_simulator)
    edit_config(run_dir, drop_pricing)

    # The calls were of a model only the removed row priced (the simulator serves listed models
    # only, so the entries are renamed to one): the price list cannot price them now.
    def unpriced(entry: dict[str, Any]) -> None:
        entry["model"] = "claude-house-model"
        if entry_format == "before_prices_were_recorded":
            for key in ("prices", "written_at", "spent_before"):
                del entry[key]

    rewrite_entries(run_dir, unpriced)
    written = entries(run_dir)

    resume = cli(tmp_path, "resume", run_dir.name, "--headless", "--runs-dir", str(runs), env=env)

    assert resume.returncode == 0, resume.stderr
    assert "Traceback" not in resume.stderr + resume.stdout
    charged = lost_charges(run_dir)
    assert set(charged) == {"north", "south"}
    now = PriceTable.from_config(PricingSettings())
    for agent_id, entry in written.items():
        listed = now.cost(MODEL, worst(entry))
        if entry_format == "recorded_prices":  # the house price it was sent at, not today's list
            assert charged[agent_id] == pytest.approx(cost_at(entry["prices"], worst(entry)))
            assert charged[agent_id] > 10 * listed
        else:  # no record of its price: the dearest rates known, and it says so
            assert charged[agent_id] == pytest.approx(cost_at(now.dearest_rates(), worst(entry)))
            assert charged[agent_id] >= listed
    said = "recorded when it was sent" if entry_format == "recorded_prices" else "dearest rates known"
    assert said in resume.stderr
    assert summary_of(run_dir)["cost_usd"] == pytest.approx(charged_usd(run_dir), abs=1e-5)
    assert verify_run(RunDir(run_dir)).problems == []
