"""The CLI shell: fast help, one-line errors, config files."""

import argparse
import subprocess
import sys

import pytest
import torch

from landscape import cli
from landscape.config_file import read_config_file
from landscape.errors import UserError

HEAVY_MODULES = ("torch", "matplotlib", "h5py", "numpy", "sklearn", "scipy")


def test_building_the_parser_imports_no_heavy_module():
    code = (
        "import sys; from landscape.cli import build_parser; build_parser(); "
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"landscape {command}" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2


def _fake_command(monkeypatch, exc):
    def run(args):
        raise exc

    parser = argparse.ArgumentParser(prog="landscape", parents=[cli._global_flags()])
    sub = parser.add_subparsers(dest="command")
    fake = sub.add_parser("fake", parents=[cli._global_flags()])
    fake.set_defaults(_run=run)
    monkeypatch.setattr(cli, "build_parser", lambda: (parser, {"fake": fake}))


@pytest.mark.parametrize(
    "exc, expected",
    [
        (
            UserError("the file is missing; give another"),
            "landscape: error: the file is missing; give another",
        ),
        (
            MemoryError(),
            "landscape: error: out of memory on the CPU; lower --batch-size, --samples",
        ),
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
            "landscape: error: out of memory on the GPU (CUDA out of memory. Tried to allocate "
            "20.00 GiB); lower --batch-size, --samples",
        ),
        (
            PermissionError(13, "Permission denied", "/data/x.h5"),
            "landscape: error: Permission denied: /data/x.h5",
        ),
    ],
    ids=["user-error", "cpu-out-of-memory", "gpu-out-of-memory", "system-refused"],
)
def test_errors_the_user_can_fix_are_one_line_with_exit_status_1(
    monkeypatch, capsys, exc, expected
):
    _fake_command(monkeypatch, exc)
    assert cli.main(["fake"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(expected)


@pytest.mark.parametrize("exc", [RuntimeError("boom\nsecond line"), KeyError("boom")])
def test_an_internal_error_has_exit_status_3_and_says_how_to_report_it(monkeypatch, capsys, exc):
    _fake_command(monkeypatch, exc)
    assert cli.main(["fake"]) == cli.EXIT_INTERNAL_ERROR == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        f"landscape: error: internal error (a bug in landscape): {type(exc).__name__}: "
    )
    assert err.rstrip().endswith("rerun the same command with --debug and report the traceback")


def test_debug_shows_the_traceback(monkeypatch):
    _fake_command(monkeypatch, UserError("nope"))
    with pytest.raises(UserError):
        cli.main(["fake", "--debug"])


def _parser():
    parser = argparse.ArgumentParser(prog="landscape train")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sam-start", type=int)
    parser.add_argument("--schedule", choices=["step", "cosine"], default="step")
    parser.add_argument("--config")
    return parser


def test_config_file_values_become_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'epochs = 30\nsam-start = 25\n[train]\nschedule = "cosine"\n[hessian]\ntop_k = 3\n'
    )
    assert read_config_file(path, _parser()) == {
        "epochs": 30,
        "sam_start": 25,
        "schedule": "cosine",
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochz = 3\n", "unknown key 'epochz'"),
        ('schedule = "linear"\n', "not one of step, cosine"),
        ("epochs = [\n", "not valid TOML"),
    ],
)
def test_bad_config_files_are_user_errors(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_config_file(path, _parser())


def test_missing_config_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_config_file(tmp_path / "none.toml", _parser())


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["surface", "c.pt", "--x", "-1:1:51"],
            "write --x=-1:1:51 (see 'landscape surface --help')",
        ),
        (
            ["hessian", "c.pt", "--top-kk", "3"],
            "did you mean --top-k? (see 'landscape hessian --help')",
        ),
        (["train", "--epochz", "3"], "did you mean --epochs? (see 'landscape train --help')"),
        (
            ["hesian", "c.pt"],
            "unknown command 'hesian'; did you mean hessian? (see 'landscape --help')",
        ),
    ],
)
def test_usage_errors_say_how_to_fix_them(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("landscape: error: ") and err.rstrip().endswith(expected)


def test_bare_landscape_lists_the_commands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert all(f"    {command} " in out for command in cli.COMMANDS)


def _help(command: str) -> str:
    return cli.build_parser()[1][command].format_help()


@pytest.mark.parametrize(
    "command, option, default",
    [
        ("hessian", "--samples", "5000"),
        ("hessian", "--batch-size", "512 with --bn train, else the fastest, measured"),
        ("surface", "--samples", "2000 per split"),
        ("sharpness", "--samples", "1024"),
        ("sharpness", "--batch-size", "512 with --bn train, else the fastest, measured"),
        ("escape", "--batch-size", "512 with --bn train, else the fastest, measured"),
    ],
)
def test_analysis_commands_state_their_subset_defaults(command, option, default):
    action = next(a for a in cli.build_parser()[1][command]._actions if option in a.option_strings)
    assert f"(default: {default}" in action.help


def test_train_help_states_one_timing_and_no_garbled_default():
    text = " ".join(_help("train").split())
    assert "minute" not in text and text.count("about 10 s") == 1
    assert "x--gamma" not in text and "lr times --gamma at each milestone" in text


def test_experiment_flags_show_their_choices():
    text = _help("experiment")
    for shown in (
        "{step,cosine,constant}",
        "{eval,train}",
        "{digits,mnist1d,cifar10,cifar100}",
        "{keep,reset}",
    ):
        assert shown in text


def test_info_lists_only_the_flags_it_uses():
    options = {s for a in cli.build_parser()[1]["info"]._actions for s in a.option_strings}
    assert {"--arch", "--dataset", "--data", "--json"} <= options
    assert not options & {"--samples", "--batch-size", "--split", "--loss"}
