"""Builders: where the Docker work of the function loop happens (local engine, hub service)."""
