"""The HTTP faces of the node: the Handle JSON API, the web proxy, health checks."""
