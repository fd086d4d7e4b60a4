"""Charts, dashboards, tables and export."""
