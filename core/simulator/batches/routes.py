"""The Message Batches endpoints on the simulator's aiohttp app, as the official SDKs call them.

``POST /v1/messages/batches`` (create), ``GET /v1/messages/batches`` (list: ``limit``, ``after_id``,
``before_id``), ``GET …/{id}`` (retrieve), ``GET …/{id}/results`` (JSON Lines, once ended),
``POST …/{id}/cancel``, ``DELETE …/{id}`` (an ended batch only), and ``GET /_simulator/batches``
(every ``custom_id`` submitted and how often). Auth, headers, JSON, error bodies and the request log
are the Messages endpoint's (``server._Handlers``); ``server.create_app`` adds these routes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from core.simulator.batches.batch import Batch
from core.simulator.batches.envelope import parse_batch, parse_page_query
from core.simulator.batches.store import BatchStore
from core.simulator.errors import InvalidRequest, new_request_id
from core.simulator.outcome import Outcome

PREFIX = "/v1/messages/batches"


class Api(Protocol):
    """What these routes share with the Messages endpoint (``server._Handlers``)."""

    async def prologue(self, request: web.Request, outcome: Outcome, raw: bytes) -> web.Response | None: ...

    def admit(self, request: web.Request, outcome: Outcome) -> web.Response | None: ...

    def error(
        self, outcome: Outcome, status: int, message: str, *, error_type: str | None = None
    ) -> web.Response: ...

    def log(self, outcome: Outcome, status: int) -> None: ...

    def headers(self, request_id: str) -> Mapping[str, str]: ...


class BatchRoutes:
    def __init__(self, api: Api, store: BatchStore) -> None:
        self.api = api
        self.store = store

    def add_to(self, app: web.Application) -> None:
        router = app.router
        router.add_post(PREFIX, self.create)
        router.add_get(PREFIX, self.list)
        router.add_get(PREFIX + "/{batch_id}", self.retrieve)
        router.add_delete(PREFIX + "/{batch_id}", self.delete)
        router.add_get(PREFIX + "/{batch_id}/results", self.results)
        router.add_post(PREFIX + "/{batch_id}/cancel", self.cancel)
        router.add_get("/_simulator/batches", self.submitted)

    async def create(self, request: web.Request) -> web.Response:
        raw = await request.read()
        outcome = Outcome(new_request_id(), raw, request.path)
        failure = await self.api.prologue(request, outcome, raw)
        if failure is not None:
            return failure
        try:
            requests = parse_batch(outcome.body, self.store.max_requests)
        except InvalidRequest as exc:
            return self.api.error(outcome, exc.status, str(exc), error_type=exc.error_type)
        return self._ok(outcome, self._json(request, self.store.create(requests)))

    async def retrieve(self, request: web.Request) -> web.Response:
        return await self._on_batch(request, lambda batch: self._json(request, batch))

    async def cancel(self, request: web.Request) -> web.Response:
        def cancel(batch: Batch) -> dict[str, Any]:
            return self._json(request, self.store.cancel(batch.id))

        return await self._on_batch(request, cancel)

    async def delete(self, request: web.Request) -> web.Response:
        def delete(batch: Batch) -> dict[str, Any]:
            self.store.delete(batch.id)
            return {"id": batch.id, "type": "message_batch_deleted"}

        return await self._on_batch(request, delete)

    async def list(self, request: web.Request) -> web.Response:
        outcome = await self._admitted(request)
        if isinstance(outcome, web.Response):
            return outcome
        try:
            batches, has_more = self.store.page(parse_page_query(request.query))
        except InvalidRequest as exc:
            return self.api.error(outcome, exc.status, str(exc), error_type=exc.error_type)
        page = {
            "data": [self._json(request, b) for b in batches],
            "has_more": has_more,
            "first_id": batches[0].id if batches else None,
            "last_id": batches[-1].id if batches else None,
        }
        return self._ok(outcome, page)

    async def results(self, request: web.Request) -> web.Response:
        outcome = await self._admitted(request)
        if isinstance(outcome, web.Response):
            return outcome
        try:
            batch = self.store.get(request.match_info["batch_id"])
            if not batch.ended:
                raise InvalidRequest(
                    f"message_batch_id: Message Batch {batch.id} is still {batch.processing_status}: its "
                    "results are available once it has ended"
                )
            if batch.archived(self.store.now()):
                raise InvalidRequest(
                    f"message_batch_id: the results of Message Batch {batch.id} are no longer available "
                    "(kept 29 days)",
                    status=404,
                    error_type="not_found_error",
                )
        except InvalidRequest as exc:
            return self.api.error(outcome, exc.status, str(exc), error_type=exc.error_type)
        lines = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in batch.results)
        self.api.log(outcome, 200)
        return web.Response(
            body=lines.encode(),
            content_type="application/binary",
            headers=self.api.headers(outcome.request_id),
        )

    async def submitted(self, request: web.Request) -> web.Response:
        return web.json_response({"submitted": dict(self.store.submitted)})

    # --- helpers --------------------------------------------------------------------------------------

    async def _admitted(self, request: web.Request) -> Outcome | web.Response:
        """The request's log outcome once auth and headers pass, else the error response."""
        outcome = Outcome(new_request_id(), await request.read(), request.path)
        failure = self.api.admit(request, outcome)
        return outcome if failure is None else failure

    async def _on_batch(self, request: web.Request, act: Callable[[Batch], dict[str, Any]]) -> web.Response:
        """``act`` on the batch the path names; its JSON answer, or the API's error."""
        outcome = await self._admitted(request)
        if isinstance(outcome, web.Response):
            return outcome
        try:
            body = act(self.store.get(request.match_info["batch_id"]))
        except InvalidRequest as exc:
            return self.api.error(outcome, exc.status, str(exc), error_type=exc.error_type)
        return self._ok(outcome, body)

    def _ok(self, outcome: Outcome, body: dict[str, Any]) -> web.Response:
        self.api.log(outcome, 200)
        return web.json_response(body, headers=self.api.headers(outcome.request_id))

    def _json(self, request: web.Request, batch: Batch) -> dict[str, Any]:
        url = f"{request.scheme}://{request.host}{PREFIX}/{batch.id}/results"
        return batch.to_json(url, self.store.now())
