"""The command line lists every capability and is honest about what is not built."""

from typer.testing import CliRunner

from skyfleet.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in (
        "site",
        "coordinator",
        "train",
        "simulate",
        "score",
        "detect",
        "demo",
        "nats",
        "status",
        "fleet",
        "users",
    ):
        assert f" {command} " in result.output
