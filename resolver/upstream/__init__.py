"""Where the node talks to other nodes: the national top-level node, other sites (recursion), and its own site record."""
