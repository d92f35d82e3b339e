"""The site's part of the fleet-learning loop, as one part of the agent: samples out
(`site_agent.samples`), models in (`site_agent.model_manager`).

`SiteLearning` gives the agent what it wires: the serving model to score with, the sampling
stage for the pipeline, the hook that lets the drift watch see settled frames, the handler for
`ModelRelease` commands, and one loop (`run`) that installs releases and sends samples.
A site that scores through Triton installs releases into its Triton's repository
(`site_agent.triton_release`) when it is given that repository, and refuses them otherwise.
"""

import asyncio
from collections.abc import Callable

from nats.aio.client import Client

from imaging.scoring import QualityPredictor
from protos import FleetMessage, ModelRelease
from site_agent.model_manager import ModelManager, Placement, ServingModel
from site_agent.pipeline import Stage
from site_agent.samples import SampleSender
from site_agent.settings import SiteAgentSettings
from site_agent.telemetry import AgentMetrics

TRITON_SWITCH = (
    "this site scores through Triton (--triton-url) and has no Triton repository to install "
    "releases into (triton_repository): the Triton repository decides the version it serves"
)


def triton_placement(settings: SiteAgentSettings) -> Placement | None:
    """The site's Triton repository, where releases go (None: not a Triton site, or one
    without a repository it writes)."""
    if settings.triton_url is None or settings.triton_repository is None:
        return None
    # tritonclient is an optional extra: imported only when Triton is asked for
    from site_agent.triton_release import TritonRepository

    return TritonRepository(settings.triton_url, settings.triton_repository)


class SiteLearning:
    """Samples and model releases of one site agent."""

    def __init__(self, settings: SiteAgentSettings, metrics: AgentMetrics) -> None:
        self.models = ModelManager(
            settings.site_id,
            settings.work_dir / "models",
            release_public_key=settings.release_public_key,
            limits=settings.rollout,
            count=metrics.command,
            refuse_all=(
                TRITON_SWITCH if settings.triton_url and not settings.triton_repository else None
            ),
            placement=triton_placement(settings),
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
