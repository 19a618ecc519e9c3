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
