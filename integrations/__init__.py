"""Adapters for outside systems: webhook verification and payload -> canonical event mapping."""
