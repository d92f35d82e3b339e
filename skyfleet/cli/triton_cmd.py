"""`skyfleet triton ...`: serve an exported quality model through a local Triton server."""

import signal
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Serve the quality model through the Triton Inference Server.")
console = Console()


@app.command("serve")
def serve(
    model_dir: Path = typer.Option(
        ..., exists=True, file_okay=False, help="Exported model folder (manifest, <version>/)."
    ),
    grpc_port: int = typer.Option(8001, help="gRPC port for site agents (0: a free one)."),
    http_port: int = typer.Option(8000, help="HTTP port (0: a free one)."),
    metrics_port: int = typer.Option(0, help="Prometheus metrics port (0: a free one)."),
    work_dir: Path = typer.Option(
        Path("var/triton"), help="Serving repository, backends and server log."
    ),
    max_batch_size: int = typer.Option(64, min=1, help="Largest batch Triton forms."),
    gpu: bool | None = typer.Option(None, "--gpu/--cpu", help="Default: GPU if CUDA is here."),
) -> None:
    """Serve the exported model in --model-dir through tritonserver until Ctrl-C."""
    from imaging.quality_model import ModelLoadError  # torch loads only to serve
    from training.triton.repository import build_serving_repository
    from training.triton.server import TritonServer, TritonServerConfig, TritonServerError

    work_dir = work_dir.resolve()
    try:
        served = build_serving_repository(
            model_dir, work_dir / "repository", max_batch_size=max_batch_size, use_gpu=gpu
        )
    except (ModelLoadError, OSError) as exc:
        console.print(f"[red]cannot serve {model_dir}:[/] {exc}")
        raise typer.Exit(code=1) from None
    config = TritonServerConfig.on_free_ports(
        served.repository,
        work_dir,
        (served.name,),
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"Starting tritonserver with {served.name} version {served.version} ...")
    try:
        server = TritonServer(config)
        server.start()
    except TritonServerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=1) from None
    try:
        table = Table(title="Triton is serving", show_header=False)
        table.add_row("model", f"{served.name} version {served.version}")
        table.add_row("sha256", served.sha256)
        table.add_row("instances", served.instance_kind)
        table.add_row("gRPC (site agents)", config.grpc_url)
        table.add_row("HTTP", config.http_url)
        table.add_row("metrics", f"http://{config.host}:{config.metrics_port}/metrics")
        table.add_row("repository", str(served.repository))
        table.add_row("log", str(server.log_path))
        table.add_row("pid", str(server.pid))
        console.print(table)
        console.print(
            f"Score through it: skyfleet site run --triton-url {config.grpc_url}. "
            "Press Ctrl-C to stop.",
            highlight=False,
        )
        while not stop.wait(0.2):
            if not server.running:
                console.print(f"[red]tritonserver exited unexpectedly[/]; log: {server.log_path}")
                raise typer.Exit(code=1)
    finally:
        server.stop()
    console.print("tritonserver stopped; no process left behind.")
