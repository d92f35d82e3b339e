"""Assembles the sub-commands into the `skyfleet` app."""

import typer

from skyfleet.cli import (
    coordinator_cmd,
    demo_cmd,
    detect_cmd,
    fleet_cmd,
    model_cmd,
    nats_cmd,
    realbogus_cmd,
    score_cmd,
    simulate_cmd,
    site_cmd,
    status_cmd,
    train_cmd,
    triton_cmd,
    users_cmd,
)

app = typer.Typer(
    name="skyfleet",
    help="Run a fleet of robotic telescopes as one instrument.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(fleet_cmd.app, name="fleet")
app.add_typer(nats_cmd.app, name="nats")
app.add_typer(site_cmd.app, name="site")
app.add_typer(coordinator_cmd.app, name="coordinator")
app.add_typer(train_cmd.app, name="train")
app.add_typer(triton_cmd.app, name="triton")
app.add_typer(users_cmd.app, name="users")
app.add_typer(model_cmd.app, name="model")
app.add_typer(realbogus_cmd.app, name="realbogus")
app.command("simulate")(simulate_cmd.simulate)
app.command("score")(score_cmd.score)
app.command("detect")(detect_cmd.detect)
app.command("demo")(demo_cmd.demo)
app.command("status")(status_cmd.status)
