"""Local `evaluate` metric modules (the hub is not reachable)."""
