"""Creating the JetStream streams defined in `protos.streams` on a server."""

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from protos.streams import Retention, Storage, StreamSpec

_RETENTION = {
    Retention.LIMITS: js_api.RetentionPolicy.LIMITS,
    Retention.INTEREST: js_api.RetentionPolicy.INTEREST,
    Retention.WORK_QUEUE: js_api.RetentionPolicy.WORK_QUEUE,
}
_STORAGE = {Storage.FILE: js_api.StorageType.FILE, Storage.MEMORY: js_api.StorageType.MEMORY}


def stream_config(spec: StreamSpec) -> js_api.StreamConfig:
    """The nats-py configuration of a stream spec."""
    sources = [
        js_api.StreamSource(
            name=source.name,
            filter_subject=source.filter_subject,
            external=js_api.ExternalStream(api=source.api_prefix) if source.api_prefix else None,
        )
        for source in spec.sources
    ]
    return js_api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=spec.subjects or None,
        retention=_RETENTION[spec.retention],
        storage=_STORAGE[spec.storage],
        max_age=spec.max_age_s,
        duplicate_window=spec.duplicate_window_s,
        max_bytes=spec.max_bytes,
        first_seq=spec.first_seq,
        sources=sources or None,
    )


async def ensure_streams(js: JetStreamContext, specs: list[StreamSpec]) -> list[str]:
    """Create each stream, or update it in place if it exists (never delete and re-create:
    re-created sourced streams can stall, nats-server #6206). Returns the stream names."""
    for spec in specs:
        config = stream_config(spec)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
    return [spec.name for spec in specs]
