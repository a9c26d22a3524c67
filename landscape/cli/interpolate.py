"""landscape interpolate (placeholder until its issue lands)."""

HELP = "interpolate (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape interpolate' is not available yet")
