"""Pipelines: a YAML DAG of project and command steps (design.md §6)."""
