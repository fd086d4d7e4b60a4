"""Operators, model shapes, transformer and CNN builders, scenarios and mixes."""
