"""A sky camera served as an ASCOM Alpaca Camera device: our sky simulator behind the same Alpaca
calls a real camera answers, for telescopes whose other devices are `alpaca-simulators`.

The simulators' own camera renders with `cabaret`, which asks Gaia over the network; offline it
has no image (PLATFORM.md). This device answers the camera calls the site's follow-up executor
makes (Connected, StartExposure, ImageReady, CameraState, PercentCompleted, ImageArray in the
ImageBytes format, AbortExposure, StopExposure, sizes and capabilities). At the start of an
exposure it asks the mount (an Alpaca Telescope) where it points and renders that sky with
`training.simulator` at the site and time: a demo field's stars, galaxies and transients when
the pointing is within a degree of one, else the pointing's own stars; weather drifts as in the
demo's night. `time_scale` shortens the wait (a 120 s exposure in 2.4 s at 0.02) without
changing the exposure's photons.

Run: `python -m skyfleet.sky_camera --port P --mount 127.0.0.1:Q --lat .. --lon .. --height ..`.
"""

import argparse
import asyncio
import contextlib
import struct
from datetime import timedelta
from typing import Any

import numpy as np
import uvicorn
from alpaca.telescope import Telescope
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, Response

from protos import SiteLocation
from protos.base import utc_now
from skyfleet.demo_sites import (
    DEMO_FIELDS,
    NightWeather,
    field_galaxies,
    field_stars,
    field_transients,
)
from training.simulator import SimCamera
from training.simulator.conditions import sample_conditions
from training.simulator.frame import simulate_frame

PREFIX = "/api/v1/camera/0"
FIELD_MATCH_DEG = 1.0
"""A pointing this close to a demo field sees that field's sky (stars, galaxies, transients)."""
IMAGE_BYTES_INT32 = 2
"""ImageBytes element type code of Int32 (ASCOM Alpaca API, ImageArrayElementTypes)."""
IDLE, EXPOSING, ERROR = 0, 2, 5
"""ASCOM CameraStates used here."""
ASCOM_INVALID_OPERATION = 0x40B
ASCOM_DRIVER_ERROR = 0x500


class SkyCamera:
    """The camera's state: one exposure at a time, its image kept until the next."""

    def __init__(
        self,
        camera: SimCamera,
        location: SiteLocation,
        mount_address: str,
        *,
        seed: int,
        time_scale: float,
        sky_clock_offset_s: float,
    ) -> None:
        self.camera = camera
        self.location = location
        self.mount = Telescope(mount_address, 0)
        self.connected = False
        self.state = IDLE
        self.image: np.ndarray | None = None
        self.error: str | None = None
        self.exposures = 0
        self._seed = seed
        self._time_scale = time_scale
        self._offset = timedelta(seconds=sky_clock_offset_s)
        self._weather = NightWeather(np.random.default_rng([seed, 1]))
        self._task: asyncio.Task[None] | None = None

    async def start(self, duration_s: float) -> None:
        """Open the shutter: read the mount, then render after the (scaled) exposure time."""
        if self._task is not None and not self._task.done():
            raise CameraError(ASCOM_INVALID_OPERATION, "an exposure is already in progress")
        ra_h, dec = await asyncio.to_thread(
            lambda: (self.mount.RightAscension, self.mount.Declination)
        )
        self.image, self.error, self.state = None, None, EXPOSING
        started = utc_now() + self._offset
        self._task = asyncio.create_task(
            self._expose(float(ra_h) * 15.0, float(dec), duration_s, started)
        )

    async def _expose(self, ra: float, dec: float, duration_s: float, started: Any) -> None:
        await asyncio.sleep(duration_s * self._time_scale)
        try:
            self.image = await asyncio.to_thread(self._render, ra, dec, duration_s, started)
            self.state = IDLE
        except ValueError as exc:  # e.g. a pointing below the simulator's horizon
            self.error, self.state = f"exposure failed: {exc}", ERROR

    def _render(self, ra: float, dec: float, duration_s: float, started: Any) -> np.ndarray:
        index = self.exposures
        self.exposures += 1
        rng = np.random.default_rng([self._seed, index, 11])
        field = next(
            (
                f
                for f in DEMO_FIELDS
                if abs(f.ra_deg - ra) < FIELD_MATCH_DEG and abs(f.dec_deg - dec) < FIELD_MATCH_DEG
            ),
            None,
        )
        frame = simulate_frame(
            sample_conditions(rng, self._weather.next_label()),
            self.camera.model_copy(update={"exptime_s": duration_s}),
            date_obs=started,
            site_name="sky-camera",
            rng=rng,
            ra_deg=ra,
            dec_deg=dec,
            stars=field_stars(field, self.camera) if field else None,
            galaxies=field_galaxies(field, self.camera) if field else None,
            transients=field_transients(field, self.camera) if field else (),
            site=self.location,
        )
        return np.asarray(frame.data)

    def abort(self) -> None:
        """Stop the exposure in progress and throw it away."""
        if self._task is not None:
            self._task.cancel()
        self.image, self.state = None, IDLE

    def ready(self) -> bool:
        if self.error is not None:
            raise CameraError(ASCOM_DRIVER_ERROR, self.error)
        return self.image is not None


class CameraError(Exception):
    """An ASCOM error answered to the client (ErrorNumber and ErrorMessage)."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(message)
        self.number = number


def image_bytes(image: np.ndarray) -> bytes:
    """The ImageBytes body of an image of rows: a 44-byte header, then Int32 pixels x-major."""
    height, width = image.shape
    header = struct.pack(
        "<11i", 1, 0, 0, 0, 44, IMAGE_BYTES_INT32, IMAGE_BYTES_INT32, 2, width, height, 0
    )
    return header + np.ascontiguousarray(image.T, dtype="<i4").tobytes()


def camera_app(sky: SkyCamera) -> FastAPI:
    """The Alpaca Camera device 0 over `sky`.
    Long because it is the device's table of calls, one small handler each."""
    app = FastAPI(title="Skyfleet sky camera")

    def answer(value: object = None) -> JSONResponse:
        body: dict[str, object] = {"ErrorNumber": 0, "ErrorMessage": "", "ServerTransactionID": 0}
        if value is not None:
            body["Value"] = value
        return JSONResponse(body)

    @app.exception_handler(CameraError)
    async def camera_error(request: Request, exc: CameraError) -> JSONResponse:
        return JSONResponse({"ErrorNumber": exc.number, "ErrorMessage": str(exc), "Value": None})

    fixed: dict[str, object] = {
        "canabortexposure": True,
        "canstopexposure": True,
        "cameraxsize": sky.camera.width_px,
        "cameraysize": sky.camera.height_px,
        "numx": sky.camera.width_px,
        "numy": sky.camera.height_px,
        "binx": 1,
        "biny": 1,
        "maxadu": 65535,
        "electronsperadu": sky.camera.gain_e_per_adu,
        "pixelsizex": 15.0,
        "pixelsizey": 15.0,
        "sensortype": 0,
        "interfaceversion": 3,
        "name": "Skyfleet sky camera",
        "description": "training.simulator sky behind the Alpaca Camera API",
        "driverinfo": "skyfleet.sky_camera",
        "driverversion": "1.0",
    }

    @app.get(PREFIX + "/imagearray")
    async def imagearray(request: Request) -> Response:
        if sky.image is None:
            raise CameraError(ASCOM_INVALID_OPERATION, "no image available")
        if "application/imagebytes" in request.headers.get("accept", ""):
            return Response(image_bytes(sky.image), media_type="application/imagebytes")
        return answer(sky.image.T.tolist())

    @app.get(PREFIX + "/{name}")
    async def get(name: str) -> JSONResponse:
        if name in fixed:
            return answer(fixed[name])
        if name == "connected":
            return answer(sky.connected)
        if name == "camerastate":
            return answer(sky.state)
        if name == "imageready":
            return answer(sky.ready())
        if name == "percentcompleted":
            return answer(100 if sky.image is not None else 0)
        return JSONResponse(f"unknown camera property {name}", status_code=400)

    @app.put(PREFIX + "/connected")
    async def connect(Connected: str = Form(...)) -> JSONResponse:
        sky.connected = Connected.lower() == "true"
        return answer()

    @app.put(PREFIX + "/startexposure")
    async def start(Duration: float = Form(...), Light: str = Form("true")) -> JSONResponse:
        if not sky.connected:
            raise CameraError(0x407, "camera not connected")
        await sky.start(Duration)
        return answer()

    @app.put(PREFIX + "/abortexposure")
    async def abort() -> JSONResponse:
        sky.abort()
        return answer()

    @app.put(PREFIX + "/stopexposure")
    async def stop() -> JSONResponse:
        sky.abort()
        return answer()

    return app


def main() -> None:
    """Serve one sky camera on loopback until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", required=True, help="host:port of the mount's Alpaca server")
    parser.add_argument("--lat", type=float, required=True)
    parser.add_argument("--lon", type=float, required=True)
    parser.add_argument("--height", type=float, default=0.0)
    parser.add_argument("--camera-px", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--sky-clock-offset-s", type=float, default=0.0)
    args = parser.parse_args()
    sky = SkyCamera(
        SimCamera(width_px=args.camera_px, height_px=args.camera_px),
        SiteLocation(lat_deg=args.lat, lon_deg=args.lon, height_m=args.height),
        args.mount,
        seed=args.seed,
        time_scale=args.time_scale,
        sky_clock_offset_s=args.sky_clock_offset_s,
    )
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(camera_app(sky), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
