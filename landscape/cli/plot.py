"""landscape plot (placeholder until its issue lands)."""

HELP = "plot (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape plot' is not available yet")
