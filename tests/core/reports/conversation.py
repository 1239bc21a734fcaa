"""Building assistant conversations the way the API returns them (search results, cited text)."""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


def page(n: int, site: str = "news.example") -> dict[str, Any]:
    return {"type": "web_search_result", "url": f"https://{site}/page-{n}", "title": f"Page {n}",
            "encrypted_content": "x", "page_age": None}  # fmt: skip


def search(tool_id: str, query: str) -> dict[str, Any]:
    return {"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": query}}


def results(tool_id: str, pages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": pages}


def text(value: str, *cited: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": value}
    if cited:
        block["citations"] = [
            {"type": "web_search_result_location", "url": p["url"], "title": p["title"] + " (cited)",
             "cited_text": "…", "encrypted_index": "x"}
            for p in cited
        ]  # fmt: skip
    return block


def user(value: str) -> Message:
    return {"role": "user", "content": [{"type": "text", "text": value}]}


def assistant(*blocks: dict[str, Any]) -> Message:
    return {"role": "assistant", "content": list(blocks)}


def research_turn(tool_id: str, pages: list[dict[str, Any]], cite: list[dict[str, Any]]) -> Message:
    """A turn that announces a search, makes it, and writes a cited finding per page in ``cite``."""
    blocks = [text(f"Let me search for evidence {tool_id}."), search(tool_id, "q"), results(tool_id, pages)]
    blocks += [text(f"Finding from {p['title']}.", p) for p in cite]
    return assistant(*blocks)
