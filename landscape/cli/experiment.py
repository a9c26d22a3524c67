"""landscape experiment (placeholder until its issue lands)."""

HELP = "experiment (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape experiment' is not available yet")
