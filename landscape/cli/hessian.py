"""landscape hessian (placeholder until its issue lands)."""

HELP = "hessian (not yet available)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from landscape.errors import UserError

    raise UserError("'landscape hessian' is not available yet")
