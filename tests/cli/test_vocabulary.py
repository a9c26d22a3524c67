"""One vocabulary in every command: the BatchNorm option and its old spellings."""

import argparse

import pytest

from landscape.cli.common import BN_MODES, add_bn


def parser(modes=("eval", "train", "recalibrate"), default="eval"):
    p = argparse.ArgumentParser()
    add_bn(p, modes, default)
    return p


def test_bn_takes_each_of_the_commands_modes():
    for mode in ("eval", "train", "recalibrate"):
        assert parser().parse_args(["--bn", mode]).bn == mode
    assert parser().parse_args([]).bn == "eval"


def test_the_old_option_name_still_works_with_a_warning(capsys):
    assert parser().parse_args(["--bn-mode", "train"]).bn == "train"
    assert "landscape: warning: --bn-mode is deprecated; use --bn train" in capsys.readouterr().err


def test_the_old_value_recompute_means_recalibrate_with_a_warning(capsys):
    assert parser().parse_args(["--bn", "recompute"]).bn == "recalibrate"
    assert "--bn recompute is deprecated; use --bn recalibrate" in capsys.readouterr().err


def test_a_mode_the_command_does_not_take_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        parser(modes=("eval", "train")).parse_args(["--bn", "recalibrate"])
    assert "invalid choice: 'recalibrate'" in capsys.readouterr().err


def test_the_help_says_what_each_mode_means():
    text = parser().format_help().replace("\n", " ")
    assert all(" ".join(BN_MODES[m].split())[:20] in " ".join(text.split()) for m in ("eval",))


def test_an_unknown_mode_in_a_command_definition_is_a_programming_error():
    with pytest.raises(ValueError):
        parser(modes=("eval", "frozen"))


@pytest.mark.parametrize("command", ["hessian", "sharpness", "escape"])
@pytest.mark.parametrize("flag", ["--bn", "--bn-mode"])
def test_the_curvature_commands_take_bn_and_still_the_old_bn_mode(command, flag, capsys):
    from landscape import cli

    parser = cli.build_parser()[1][command]
    required = ["--rho", "0.05", "--lr", "0.1", "--steps", "2"] if command == "escape" else []
    args = parser.parse_args(["ckpt.pt", *required, flag, "train"])
    assert args.bn_mode == "train"  # the attribute results store as bn_mode
    warned = "--bn-mode is deprecated; use --bn train" in capsys.readouterr().err
    assert warned == (flag == "--bn-mode")


@pytest.mark.parametrize("command", ["hessian", "sharpness", "escape"])
def test_the_curvature_commands_draw_the_subset_by_subset_seed(command):
    from landscape import cli

    parser = cli.build_parser()[1][command]
    required = ["--rho", "0.05", "--lr", "0.1", "--steps", "2"] if command == "escape" else []
    args = parser.parse_args(["ckpt.pt", *required, "--seed", "7"])
    assert (args.seed, args.subset_seed) == (7, 0)


def test_the_curvature_flags_are_the_same_in_every_command_that_takes_them():
    from landscape import cli
    from landscape.registry import CURVATURE_KINDS as CURVATURE_CHOICES

    def flags(command):
        actions = cli.build_parser()[1][command]._actions
        found = {a.dest: a for a in actions if a.dest in ("curvature", "fisher_samples")}
        return {k: (a.help, a.choices, a.default) for k, a in found.items()}

    hessian = flags("hessian")
    assert hessian["curvature"][1] == list(CURVATURE_CHOICES)
    assert flags("surface") == hessian == flags("sharpness")
