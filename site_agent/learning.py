"""The site's part of the fleet-learning loop, as one part of the agent: samples out
(`site_agent.samples`), models in (`site_agent.model_manager`).

`SiteLearning` gives the agent what it wires: the serving model to score with, the sampling
stage for the pipeline, the hook that lets the drift watch see settled frames, the handler for
`ModelRelease` commands, and one loop (`run`) that installs releases and sends samples.
"""

import asyncio
from collections.abc import Callable

from nats.aio.client import Client

from imaging.scoring import QualityPredictor
from protos import FleetMessage, ModelRelease
from site_agent.model_manager import ModelManager, ServingModel
from site_agent.pipeline import Stage
from site_agent.samples import SampleSender
from site_agent.settings import SiteAgentSettings
from site_agent.telemetry import AgentMetrics

TRITON_SWITCH = (
    "this site scores through Triton (--triton-url): the Triton repository decides the version "
    "it serves, releases are not switched at the site"
)


class SiteLearning:
    """Samples and model releases of one site agent."""

    def __init__(self, settings: SiteAgentSettings, metrics: AgentMetrics) -> None:
        self.models = ModelManager(
            settings.site_id,
            settings.work_dir / "models",
            release_public_key=settings.release_public_key,
            limits=settings.rollout,
            count=metrics.command,
            refuse_all=TRITON_SWITCH if settings.triton_url else None,
        )
        self.samples = SampleSender(settings.site_id, settings.samples)

    def serve(self, model: QualityPredictor) -> ServingModel:
        """The model the pipeline scores with (switched between frames by releases)."""
        return self.models.serve(model)

    @property
    def version(self) -> str | None:
        """The version the site serves now (for the heartbeat)."""
        return self.models.version

    @property
    def sampler(self) -> Stage:
        """The pipeline stage that picks frames for retraining."""
        return self.samples.stage

    def observing(self, then: Callable[[FleetMessage], None]) -> Callable[[FleetMessage], None]:
        """The settled-message hook with the drift watch in front of `then`."""
        return self.models.observing(then)

    def submit(self, release: ModelRelease) -> None:
        """Take a release from the command consumer."""
        self.models.submit(release)

    async def run(self, nc: Client) -> None:
        """Install releases and send samples (to the site's own server) until cancelled."""
        (self.models.store_dir).mkdir(parents=True, exist_ok=True)
        async with asyncio.TaskGroup() as group:
            group.create_task(self.models.run())
            group.create_task(self.samples.run(nc.jetstream()))
