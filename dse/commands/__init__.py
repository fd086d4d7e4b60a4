"""CLI command groups; each module registers its commands on dse.cli_app.app."""
