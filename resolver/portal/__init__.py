"""The enterprise portal, `/portal/` (issue 18): server-rendered pages on the node's own app,
calling the same services as the APIs (resolver/portal/pages.py)."""
