"""The sharpness options declared once: each measure parameter is one field, and its flag, its
default and what the measures receive follow from it."""

from __future__ import annotations

import pytest

from landscape.sharpness.options import SharpnessOptions, parameter_defaults, parameters


def _parse(argv):
    from landscape import cli
    from landscape.cli.sharpness import options_from_args

    return options_from_args(cli.build_parser()[1]["sharpness"].parse_args(["c.pt", *argv]))


@pytest.mark.parametrize("name", list(parameters()))
def test_every_parameter_field_is_a_flag_whose_value_reaches_the_measures(name):
    spelling = parameters()[name]
    value = 7 if spelling.type.endswith("int") else 0.25
    options = _parse([spelling.flag, str(value)])
    assert getattr(options, name) == ([value] if spelling.nargs == "+" else value)
    assert options.measure_options()[spelling.key or name] == value


def test_without_flags_the_options_are_the_fields_defaults():
    options = _parse([])
    assert {name: getattr(options, name) for name in parameters()} == parameter_defaults()
    assert parameter_defaults()["steps"] == SharpnessOptions().steps == 20


def test_the_help_states_each_default():
    from landscape import cli

    text = " ".join(cli.build_parser()[1]["sharpness"].format_help().split())
    assert "ascent steps (default: 20)" in text
    assert "(default: all at once)" in text and "(default: 1e-3)" in text
