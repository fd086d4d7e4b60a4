"""dse: design-space exploration for AI accelerators."""

__version__ = "0.1.0"
