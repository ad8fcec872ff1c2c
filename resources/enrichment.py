"""Settings of the chunk stage's enrichment and personal-data gate, as a resource: the chunk
assets, the moments fusion and anything that reports on them read the same policy."""

from __future__ import annotations

from typing import Any

import dagster as dg

from media_assets.pii import PiiPolicy, parse_policy


class TextEnrichment(dg.ConfigurableResource):
    """Entities, keywords and the PII gate (``MEDIA_ASSETS_PII``: off, flag, redact, drop)."""

    pii: str = "off"

    @property
    def policy(self) -> PiiPolicy:
        return parse_policy(self.pii)

    def settings(self) -> dict[str, Any]:
        """What a stage's output depends on here: part of its input, so a change of policy (or
        of the enrichment's code) makes those stages compute again and nothing upstream."""
        from media_assets.enrich import ENRICH_VERSION

        return {"enrichment": ENRICH_VERSION, "pii_policy": self.policy}
