"""landscape escape (placeholder until its issue lands)."""

HELP = "escape (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape escape' is not available yet")
