"""landscape sharpness (placeholder until its issue lands)."""

HELP = "sharpness (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape sharpness' is not available yet")
