"""The synthetic web: deterministic, on-topic, simulated, and filtered like the API's domain rules."""

from __future__ import annotations

from core.simulator.synthweb import query_terms, search


def test_results_are_deterministic_for_query_and_seed() -> None:
    assert search("tidal power costs", 1, count=6) == search("tidal power costs", 1, count=6)
    assert search("tidal power costs", 1, count=6) != search("tidal power costs", 2, count=6)


def test_titles_and_pages_follow_the_query_and_say_they_are_simulated() -> None:
    pages = search("perovskite solar cell stability", 0, count=8)

    assert len(pages) == 8
    for page in pages:
        assert "perovskite" in page.title.lower() and "(simulated)" in page.title
        assert page.text.startswith("[Simulated page") and "perovskite" in page.text
        assert page.url.startswith("https://") and ".example/" in page.url


def test_query_terms_drop_filler_words() -> None:
    assert query_terms("What is the latest on sodium-ion batteries?") == ["sodium-ion", "batteries"]


def test_blocked_domains_cover_subdomains() -> None:
    pages = search("grid storage", 0, count=12, blocked_domains=["university.example"])
    assert pages and not any("university.example" in p.url for p in pages)


def test_allowed_domains_with_paths_and_wildcards() -> None:
    only_blog = search("grid storage", 0, count=12, allowed_domains=["blog.engineering-notes.example/blog/*"])
    assert [p.url.split("/")[2] for p in only_blog] == ["blog.engineering-notes.example"]
    assert search("grid storage", 0, count=12, allowed_domains=["engineering-notes.example/other"]) == []


def test_an_allowed_list_outside_the_synthetic_web_finds_nothing() -> None:
    assert search("grid storage", 0, count=5, allowed_domains=["nature.com"]) == []
