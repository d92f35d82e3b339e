"""Fetching a released version folder into a site: from a `file://` or `http(s)://` model
repository in Triton's layout (`<repository>/<model>/<version>/`), the files a site needs.
`ReleaseRefused` is how every step of installing a release says why a site will not serve it.
"""

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from imaging.model_signature import SIGNATURE_FILE
from imaging.quality_model import MANIFEST_FILE, MODEL_FILE
from protos import ModelRelease

RELEASE_FILES = (MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE)
"""What a version folder holds that a site needs; the signature may be missing (then only a
site without a release key loads it)."""


class ReleaseRefused(Exception):
    """A release this site will not serve, with the reason."""


def fetch_version(release: ModelRelease, folder: Path, timeout_s: float) -> None:
    """Copy the release's version folder into `folder` (file:// or http(s)://)."""
    base = release.repository_uri.rstrip("/")
    parsed = urlparse(base)
    folder.mkdir(parents=True, exist_ok=True)
    for name in RELEASE_FILES:
        target = folder / name
        if parsed.scheme == "file":
            source = Path(unquote(parsed.path)) / release.model_name / release.version / name
            if name == SIGNATURE_FILE and not source.exists():
                continue
            try:
                shutil.copyfile(source, target)
            except OSError as exc:
                raise ReleaseRefused(f"cannot fetch {source}: {exc.strerror}") from None
        elif parsed.scheme in ("http", "https"):
            url = f"{base}/{release.model_name}/{release.version}/{name}"
            try:
                response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
            except httpx.HTTPError as exc:
                raise ReleaseRefused(f"cannot fetch {url}: {exc!r}") from None
            if response.status_code == 404 and name == SIGNATURE_FILE:
                continue
            if response.status_code != 200:
                raise ReleaseRefused(f"cannot fetch {url}: HTTP {response.status_code}")
            target.write_bytes(response.content)
        else:
            raise ReleaseRefused(
                f"repository {release.repository_uri!r}: only file:// and http(s):// are fetched"
            )
