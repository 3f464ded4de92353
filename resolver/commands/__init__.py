"""The subcommands of `resolver`, one module per job; resolver/cli.py builds their options from
the configuration and dispatches to them."""
