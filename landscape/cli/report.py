"""landscape report (placeholder until its issue lands)."""

HELP = "report (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape report' is not available yet")
