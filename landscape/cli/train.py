"""landscape train (placeholder until its issue lands)."""

HELP = "train (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape train' is not available yet")
