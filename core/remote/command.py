"""``research-orchestrator control RUN VERB [AGENT]``: one request to a live run's owner, one line back.

The request goes over the run's control channel (:mod:`core.remote.channel`), as an attached app's
requests do, so a script steers a detached, headless or app-owned run exactly as the app would. The
owner acts on it or refuses it and changes nothing. Exit codes: 0 done; 2 a request that cannot be
done (no such agent, an agent already finished, a verb without its agent), said with what to do
instead; 4 no live owner (the run has ended, its owner died, or it is stopped and does not answer).
"""

from __future__ import annotations

from typing import Any

from core.errors import UserError
from core.persistence.rundir import RunDir
from core.remote.channel import OwnerUnreachable, call
from core.remote.owner import NoLiveOwner, not_live, wait_until_serving
from core.safe_text import printable
from core.status import AgentStatus

AGENT_VERBS = ("pause", "resume", "kill")
VERBS = (*AGENT_VERBS, "stop")


class ControlRefused(UserError):
    """A control request the command or the run's owner cannot act on (exit 2); nothing changed."""


def request_for(run_id: str, verb: str, agent: str | None, *, now: bool = False) -> dict[str, Any]:
    """The channel request for ``control RUN VERB [AGENT] [--now]``, or why those arguments make none."""
    usage = f"research-orchestrator control {run_id}"
    if verb not in VERBS:
        raise ControlRefused(f"control: unknown verb {verb!r}; give one of {', '.join(VERBS)}")
    if verb in AGENT_VERBS and not agent:
        raise ControlRefused(f"control {verb} acts on one agent: give its id ({usage} {verb} AGENT)")
    if verb == "stop" and agent:
        raise ControlRefused(
            f"control stop acts on the whole run and takes no agent; "
            f"to end only {agent}: {usage} kill {agent}"
        )
    if now and verb != "stop":
        raise ControlRefused(f"--now goes with stop ({usage} stop --now), not with {verb}")
    if verb == "stop":
        return {"op": "stop", "now": True} if now else {"op": "stop"}
    return {"op": verb, "agent": agent}


async def send_control(run: RunDir, request: dict[str, Any]) -> str:
    """Send ``request`` to the owner of ``run``; the line saying what was done, or an error saying why not."""
    if not await wait_until_serving(run.path):  # a detached owner still starting is waited for
        raise not_live(run, NoLiveOwner)
    try:
        reply = await call(run.control_socket_path, request)
    except OwnerUnreachable as error:  # it ended, or died, or stopped answering since
        raise NoLiveOwner(f"run {run.run_id}: {error}") from None
    if not reply.get("ok"):
        raise ControlRefused(_refusal(run.run_id, request, reply))
    return _done(run.run_id, request)


def _done(run_id: str, request: dict[str, Any]) -> str:
    agent, op = request.get("agent"), request["op"]
    if op == "pause":
        return f"run {run_id}: paused {agent}: it starts no new call until `control {run_id} resume {agent}`"
    if op == "resume":
        return f"run {run_id}: resumed {agent}"
    if op == "kill":
        return f"run {run_id}: killed {agent} (a call in flight is cancelled; what it wrote is kept)"
    how = (
        "stopping now: the calls in flight are cancelled, each counted at its worst case (unconfirmed)"
        if request.get("now")
        else "stopping: the calls in flight finish their turn (within the grace period) and are saved"
    )
    return f"run {run_id}: {how}; continue it with `research-orchestrator resume {run_id}`"


def _refusal(run_id: str, request: dict[str, Any], reply: dict[str, Any]) -> str:
    """The owner's reason, and what to do instead when the agent's status says it."""
    reason = printable(str(reply.get("error") or "refused"))
    agent, op = request.get("agent"), request["op"]
    try:
        status: AgentStatus | None = AgentStatus(str(reply.get("status")))
    except ValueError:
        status = None
    if status is None:
        return f"run {run_id}: {reason}"
    if status.is_final:
        fix = f"{agent} has finished ({status.value}): there is nothing left to {op}"
    elif op == "pause" and status in (AgentStatus.PAUSING, AgentStatus.PAUSED):
        fix = f"a pause is in effect already; let it go on with `control {run_id} resume {agent}`"
    elif op == "resume":
        fix = f"only a paused agent resumes; pause it with `control {run_id} pause {agent}`"
    else:
        fix = f"check its status with `research-orchestrator attach {run_id} --headless`"
    return f"run {run_id}: {reason}; {fix}"
