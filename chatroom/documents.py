"""How a client's GraphQL document is composed from its files (SPEC §13): an operation file
(`<Name>.graphql`), then every shared fragment it spreads from `fragments/` beside it. One rule
for the CLI (chatroom/cli/client.py `operation`), the trusted-document registry
(chatroom/schema/trusted_documents.py) and the web page (js/api.js does the same in the
browser), so the text a client sends is the text registered. Shared and light: re and pathlib."""

from __future__ import annotations

import re
from pathlib import Path

FRAGMENTS = "fragments"  # beside the operation files: one `fragment <Name>` per <Name>.graphql
# A spread of a named fragment (`...TaskFields`); an inline fragment (`... on Task`) starts
# with a lower-case keyword, and our fragment names, like operation names, start upper case.
FRAGMENT_SPREAD = re.compile(r"\.\.\.\s*([A-Z][A-Za-z0-9]*)")


def document_text(path: Path) -> str:
    """The text a client sends for the operation file at `path`: the file, then every fragment
    it spreads (and those the fragments spread) from `fragments/` beside it, in name order, one
    newline between."""
    text = path.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    pending = FRAGMENT_SPREAD.findall(text)
    while pending:
        name = pending.pop()
        if name not in found:
            found[name] = (path.parent / FRAGMENTS / f"{name}.graphql").read_text(encoding="utf-8")
            pending.extend(FRAGMENT_SPREAD.findall(found[name]))
    return "\n".join([text, *(found[name] for name in sorted(found))])
