"""Whether the SDK will find credentials, and what to tell the user when not (without importing it).

``run --detach`` checks this before it starts a background owner, so a missing key is an error on
the terminal that asked, not a line in a log nobody reads.
"""

from __future__ import annotations

import os

CREDENTIAL_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
NO_API_KEY = (
    "no API key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL if you use a gateway), "
    "or add --simulate to run on the built-in simulator"
)


def api_key_present() -> bool:
    return any(os.environ.get(name) for name in CREDENTIAL_VARIABLES)
