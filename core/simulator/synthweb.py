"""A synthetic web: deterministic search results on reserved ``.example`` domains.

Results depend only on the query and the seed, so a replayed request sees the same web. Titles and
page text follow the query's terms so a demo reads sensibly, and every page says it is simulated.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_STOPWORD_TEXT = """
a an and are as at be by for from how in is it its of on or that the this to was were what when where
which who why will with vs versus about into than then there their these those does do did can could
should would may might latest new recent news per our your you we i me my please also map assess trace
survey analyse analyze reconcile combine write research investigate explain describe summarise summarize
find give list provide report brief final question answer use using including other others whom sim
"""
STOPWORDS = frozenset(re.findall(r"\S+", _STOPWORD_TEXT))
ANGLE_WORDS = frozenset(
    re.findall(
        r"\S+",
        "overview data outlook risks criticism cost trends policy case studies forecast comparison expert "
        "analysis",
    )
)
"""Words a search adds to the subject to pick an angle; page text is about the subject alone."""

# (host, site name, path template); hosts are under the reserved .example TLD (RFC 2606).
_SITES: tuple[tuple[str, str, str], ...] = (
    ("www.industry-review.example", "Industry Review", "/analysis/{slug}"),
    ("news.daily-ledger.example", "The Daily Ledger", "/{year}/{month:02d}/{slug}"),
    ("data.open-statistics.example", "Open Statistics", "/datasets/{slug}"),
    ("research.university.example", "University Research Portal", "/papers/{slug}"),
    ("www.policy-institute.example", "Policy Institute", "/reports/{year}/{slug}"),
    ("blog.engineering-notes.example", "Engineering Notes", "/blog/{slug}"),
    ("www.market-watch.example", "Market Watch", "/markets/{slug}"),
    ("journal.science-letters.example", "Science Letters", "/articles/{slug}-{num}"),
    ("www.encyclopedia.example", "Encyclopedia", "/wiki/{slug}"),
    ("www.trade-association.example", "Trade Association", "/insights/{slug}"),
    ("www.consultancy.example", "Strategy Consultancy", "/perspectives/{slug}"),
    ("forum.practitioners.example", "Practitioners' Forum", "/threads/{num}/{slug}"),
)

_TITLE_PATTERNS = (
    "{Topic}: what the {year} data shows",
    "The state of {topic} in {year}",
    "{Topic} explained: key facts and figures",
    "Why {topic} matters now",
    "{Topic}: risks, costs and open questions",
    "A practitioner's guide to {topic}",
    "{Topic} outlook to 2030",
    "New study tracks {topic}",
    "{Topic} by the numbers",
    "Five things to know about {topic}",
)

_CAVEATS = ("small samples", "short time series", "inconsistent definitions", "selective reporting")
_REGIONS = ("Asia", "Europe", "North America", "Latin America")
_PAGE_AGES = (
    "3 hours ago",
    "1 day ago",
    "4 days ago",
    "2 weeks ago",
    "December 25, 2025",
    "January 14, 2026",
    "March 3, 2026",
    None,
)
"""The shapes the API uses: relative for recent pages, a date for older ones, or none."""


@dataclass(frozen=True, slots=True)
class Page:
    """One search hit: what a ``web_search_result`` shows plus the page text it encrypts."""

    url: str
    title: str
    page_age: str | None
    text: str


def query_terms(query: str) -> list[str]:
    """The query's significant words, in order, without duplicates."""
    seen: list[str] = []
    for word in re.findall(r"[A-Za-z][A-Za-z0-9+\-]*", query):
        low = word.lower()
        if low not in STOPWORDS and len(low) > 1 and low not in (w.lower() for w in seen):
            seen.append(word)
    return seen or ["the topic"]


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _page_text(rng: random.Random, topic: str, terms: list[str], site: str) -> str:
    """A few paragraphs of page text about the topic (the result's hidden content)."""
    other = terms[1:] or terms
    sentences = [
        f"[Simulated page on {site}] This article examines {topic} using the latest available figures.",
        f"Analysts tracking {topic} report that activity grew by {rng.randint(4, 38)}% over the past year.",
        f"The main drivers cited are cost, {rng.choice(other).lower()} and regulatory clarity.",
        f"A survey of {rng.randint(40, 900)} organisations found that {rng.randint(20, 80)}% plan to "
        f"expand their work on {topic} within two years.",
        f"Critics argue that claims about {topic} often outrun the evidence, pointing to "
        f"{rng.choice(_CAVEATS)}.",
        f"Prices associated with {rng.choice(terms).lower()} fell to about {rng.randint(40, 160)} per unit "
        f"in {rng.choice([2024, 2025, 2026])}, according to the figures compiled here.",
        f"Regional differences remain large: {rng.choice(_REGIONS)} accounts for roughly "
        f"{rng.randint(15, 65)}% of the total.",
        f"Experts expect {topic} to {rng.choice(['mature', 'consolidate', 'accelerate', 'stabilise'])} "
        f"before {rng.choice([2028, 2029, 2030, 2032])}, with uncertainty about supply and demand.",
    ]
    body = sentences[1:]
    rng.shuffle(body)
    return " ".join([sentences[0], *body[: rng.randint(4, len(body))]])


def _matches(url: str, rule: str) -> bool:
    """Whether ``url`` falls under a domain filter entry (subdomains included, optional path prefix)."""
    domain, _, path = rule.partition("/")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    domain = domain.lower()
    if host != domain and not host.endswith("." + domain):
        return False
    path = path.rstrip("*")
    return not path or parts.path.lstrip("/").startswith(path)


def search(
    query: str,
    seed: int,
    *,
    count: int,
    allowed_domains: list[str] | None = None,
    blocked_domains: list[str] | None = None,
) -> list[Page]:
    """Up to ``count`` pages for ``query``, after the tool's domain filters."""
    terms = query_terms(query)
    subject = [t for t in terms if t.lower() not in ANGLE_WORDS] or terms
    topic = " ".join(subject[:4]).lower()
    slug = "-".join(t.lower() for t in terms[:5])
    rng = _rng(seed, " ".join(query.lower().split()))
    sites = list(_SITES)
    rng.shuffle(sites)
    pages: list[Page] = []
    for host, name, path_template in sites:
        year = rng.choice([2025, 2026])
        path = path_template.format(
            slug=slug, year=year, month=rng.randint(1, 12), num=rng.randint(100, 9999)
        )
        url = f"https://{host}{path}"
        if allowed_domains and not any(_matches(url, rule) for rule in allowed_domains):
            continue
        if blocked_domains and any(_matches(url, rule) for rule in blocked_domains):
            continue
        pattern = rng.choice(_TITLE_PATTERNS)
        title = pattern.format(topic=topic, Topic=topic[:1].upper() + topic[1:], year=year)
        pages.append(
            Page(
                url,
                f"{title} | {name} (simulated)",
                rng.choice(_PAGE_AGES),
                _page_text(rng, topic, terms, name),
            )
        )
        if len(pages) >= count:
            break
    return pages
