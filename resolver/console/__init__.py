"""The operator console, `/console/` (issue 18): server-rendered pages for the node administrator,
on the portal's templates and rules (resolver/console/pages.py)."""
