"""The site's periodic sign of life: what it runs, how far behind it is, and whether the
centre is reachable.

Heartbeats are published like every other site message, so the ones sent during an outage
reach the centre late but in order: the coordinator sees when the link was down.
"""

import shutil
from datetime import datetime
from pathlib import Path

from protos import LinkState, SiteConditions, SiteHeartbeat, stable_message_id
from site_agent import __version__


def disk_free_bytes(path: Path) -> int:
    """Free bytes on the file system holding `path`."""
    return shutil.disk_usage(path).free


def build_heartbeat(
    site_id: str,
    *,
    boot_id: str,
    sequence: int,
    model_version: str | None,
    queue_depths: dict[str, int],
    frames_scored: int,
    frames_rejected: int,
    last_frame_at: datetime | None,
    disk_free: int,
    link_state: LinkState,
    uptime_s: float,
    restarts: dict[str, int],
    failed_frames: int,
    conditions: SiteConditions | None = None,
) -> SiteHeartbeat:
    """One heartbeat; its id is unique to this run of the agent (`boot_id`) and `sequence`;
    with the weather and safety its devices report (`site_agent.conditions`), if it has any."""
    return SiteHeartbeat(
        message_id=stable_message_id(SiteHeartbeat.KIND, site_id, boot_id, str(sequence)),
        site_id=site_id,
        agent_version=__version__,
        model_version=model_version,
        queue_depths=queue_depths,
        frames_scored=frames_scored,
        frames_rejected=frames_rejected,
        last_frame_at=last_frame_at,
        disk_free_bytes=disk_free,
        link_state=link_state,
        uptime_s=uptime_s,
        restarts=restarts,
        failed_frames=failed_frames,
        conditions=conditions,
    )
