"""The CLI turns user-facing errors into one line naming the problem; bugs keep their traceback."""
import pytest

from installation import cli


@pytest.mark.parametrize("error", [ValueError("bundle.json: field 'resolution' is missing"),
                                   OSError("/dev/video3: no such camera"),
                                   FloatingPointError("gan: a loss became NaN at step 9; lower --lr, then --resume")])
def test_user_errors_are_one_line_and_exit_2(monkeypatch, capsys, error):
    def handler(args):
        raise error
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: _with_handler(parser, handler))
    assert cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"newsnow bench: {error}" and "Traceback" not in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    def handler(args):
        raise ZeroDivisionError("a bug")
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: _with_handler(parser, handler))
    with pytest.raises(ZeroDivisionError):
        cli.main(["bench"])


def _with_handler(parser, handler):
    original = parser.parse_args

    def parse_args(argv=None):
        args = original(argv)
        args.handler = handler
        return args
    parser.parse_args = parse_args
    return parser


@pytest.mark.parametrize("command,missing", [("train", "STEP"), ("edit", "ACTION"), ("hspace", "ACTION"),
                                             ("calibrate", "STEP"), ("camera", "ACTION")])
def test_a_command_without_its_step_names_what_is_missing(capsys, command, missing):
    """`newsnow train` with no step says which argument is missing (exit 2), as calibrate does,
    instead of the top-level help."""
    with pytest.raises(SystemExit) as stop:
        cli.main([command])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"newsnow {command}: error: the following arguments are required: {missing}" in err


def test_version(capsys):
    """`newsnow --version` prints the installed version."""
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"newsnow {cli.version()}"


def _walk(parser, path=("newsnow",)):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield " ".join(path + (name,)), sub
                yield from _walk(sub, path + (name,))


def test_every_command_has_a_description_and_every_option_a_help():
    """Each command's --help opens with what it does, and no argument is left without words."""
    import argparse

    bare = []
    for name, sub in _walk(cli.build_parser()):
        if not sub.description:
            bare.append(f"{name}: no description")
        bare += [f"{name} {a.option_strings or a.dest}" for a in sub._actions
                 if a.help is None and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
    assert bare == []


def test_train_help_says_what_each_preset_sets(capsys):
    """`train all --help` shows what --tiny sets (not only the full preset's defaults); the encoder's
    --full speaks of the encoder, not of the GAN's ADA."""
    from training.config import PRESETS
    with pytest.raises(SystemExit):
        cli.main(["train", "all", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    tiny = PRESETS["tiny"]
    assert "--tiny minutes on a 2-core CPU" in text and f"GAN {tiny['resolution']} px" in text
    assert f"(default 256; --tiny {tiny['resolution']}, --cpu-demo 64)" in text  # --resolution
    with pytest.raises(SystemExit):
        cli.main(["train", "encoder", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.rindex("--full ")  # its help, past the usage line
    full = text[start:text.index("--width", start)]
    assert "ADA" not in full and "encoder width 64" in full


def test_the_ddpm_has_one_command():
    """The DDPM trainer is `hspace train-ddpm`; `train ddpm` no longer duplicates it."""
    commands = dict(_walk(cli.build_parser()))
    assert "newsnow hspace train-ddpm" in commands and "newsnow train ddpm" not in commands
