"""landscape surface (placeholder until its issue lands)."""

HELP = "surface (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape surface' is not available yet")
