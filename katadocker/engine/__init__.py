"""Verbs on containers and images: options in, reports (plain data) out. No printing, no typer/rich."""
