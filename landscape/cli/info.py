"""landscape info (placeholder until its issue lands)."""

HELP = "info (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape info' is not available yet")
