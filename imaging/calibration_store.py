"""The site's calibration frames on disk and the masters made of them (`work_dir/calibration/`).

```
frames/<kind>/<group>/<sha256 prefix><suffix>   bias, dark and flat frames as they arrived
masters/<kind>-<group>.fits                     the master: float32 ADU, a flat normalised to 1
masters/<kind>-<group>.json                     `MasterInfo`: what it is, the frames it is of
unused/<kind>/<sha256 prefix><suffix>           calibration frames that cannot be used (saturated)
```
A group is what one master serves: a bias per geometry (shape and binning), a dark per geometry
and exposure time, a flat per geometry and filter. A group's master is built once
`MIN_FRAMES_PER_MASTER` frames have arrived, and again whenever as many more have arrived since,
from the newest `MAX_FRAMES_PER_MASTER` (older frames are then deleted). Darks and flats are
combined bias-free: each is read and has the master bias of its geometry subtracted before the
combination, so they wait for that master; flats are also scaled to a common level (twilight
flats brighten or fade from one to the next). A master and its description are written beside
their old versions and renamed into place, so a reader never sees half of one.

`masters_for` picks the masters for a science frame (the dark nearest its exposure time), and
says why a kind is missing when there are masters of it that do not fit (another size or
binning, another filter); `calibrate` applies them (`imaging.calibration`).
"""

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits
from pydantic import BaseModel, ConfigDict

from imaging.calibration import (
    CalibratedFrame,
    Geometry,
    Master,
    MasterSet,
    calibrate_frame,
    combine_masters,
    geometry_of,
    mismatch_note,
    normalised_flat,
)
from imaging.calibration_limits import MAX_FRAMES_PER_MASTER, MIN_FRAMES_PER_MASTER
from imaging.fits_reader import Frame, FrameError, read_frame
from imaging.frame_kind import FrameKind

FRAMES_DIR = "frames"
MASTERS_DIR = "masters"
UNUSED_DIR = "unused"
MAX_SATURATED_FRACTION = 0.01
"""A calibration frame with more than 1 % of its pixels at saturation is not used: a flat
exposed too long (the twilight sky brightening) would bend the master's response, and a bias
or dark that saturates is broken."""
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".fz")


class CalibrationError(Exception):
    """A master that cannot be built (every frame of its group unreadable, a flat at zero)."""


class MasterInfo(BaseModel):
    """What a master is, for whom, and the frames it was combined from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FrameKind
    group: str
    shape: tuple[int, int]
    binning: tuple[int, int]
    exptime_s: float | None = None
    filter: str | None = None
    frames: list[str]
    built_at: datetime

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.shape, self.binning)


@dataclass(frozen=True)
class Collected:
    """What became of one calibration frame: where it was put, and whether it will be used."""

    kind: FrameKind
    group: str
    stored: Path
    used: bool
    """Whether it joined its group (False: kept under `unused/`, and `note` says why)."""
    frames_in_group: int
    note: str


def group_of(frame: Frame, kind: FrameKind) -> str:
    """The group a calibration frame belongs to: '2048x2048-bin1x1', '...-300s', '...-R'."""
    geometry = geometry_of(frame).slug()
    if kind is FrameKind.DARK:
        return f"{geometry}-{_exptime_text(frame.identity.exptime_s or 0.0)}s"
    if kind is FrameKind.FLAT:
        return f"{geometry}-{_filter_slug(frame.identity.filter)}"
    return geometry


def _exptime_text(exptime_s: float) -> str:
    return format(round(exptime_s, 3), "g")


def _filter_slug(name: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "_" if name else "nofilter"


class CalibrationStore:
    """The calibration frames and masters of one site, under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        min_frames: int = MIN_FRAMES_PER_MASTER,
        max_frames: int = MAX_FRAMES_PER_MASTER,
    ) -> None:
        self.root = Path(root)
        self.min_frames = min_frames
        self.max_frames = max(max_frames, min_frames)
        self._loaded: dict[FrameKind, tuple[Path, int, Master]] = {}
        """The last master of each kind read from disk, by path and mtime: one per kind."""

    def collect(
        self, frame: Frame, kind: FrameKind, *, saturation_adu: float | None = None
    ) -> Collected:
        """Keep a calibration frame in its group, or under `unused/` saying why it cannot be
        used (hard-linked or copied from `frame.path`; the original is the caller's to remove).
        A frame already kept (the same sha256) is not kept twice."""
        group = group_of(frame, kind)
        why_not = _unusable(frame, kind, saturation_adu or frame.saturation_adu)
        folder = self.root / FRAMES_DIR / kind.value / group
        name = f"{frame.identity.sha256[:16]}{_suffix(frame.path.name)}"
        if why_not is not None:  # kept aside for a person to look at, never combined
            target = self.root / UNUSED_DIR / kind.value / name
            note = f"not used: {why_not}"
        else:
            target = folder / name
            note = "collected"
        if target.exists():
            note = f"{note} (already there)"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            _place(frame.path, target)
        return Collected(kind, group, target, why_not is None, _count(folder), note)

    def due(self) -> list[tuple[FrameKind, str]]:
        """The groups whose master should be (re)built now, biases first: enough frames, and
        for darks and flats a master bias of their geometry to subtract."""
        wanted = []
        for kind in (FrameKind.BIAS, FrameKind.DARK, FrameKind.FLAT):
            kind_dir = self.root / FRAMES_DIR / kind.value
            groups = sorted(p.name for p in kind_dir.iterdir()) if kind_dir.is_dir() else []
            for group in groups:
                members = {p.name for p in self._members(kind, group)}
                info = self.info(kind, group)
                fresh = members - set(info.frames) if info else members
                if len(members) < self.min_frames or len(fresh) < self.min_frames:
                    continue
                if kind is not FrameKind.BIAS and self._bias_info(group) is None:
                    continue  # waits for the master bias of its geometry
                wanted.append((kind, group))
        return wanted

    def build_due(self) -> tuple[list[MasterInfo], list[str]]:
        """Build every master that is due (biases first, so darks and flats can follow): the
        masters built, and why any group could not be (it is tried again next time)."""
        for stale in self.root.glob(".build-*"):  # a build cut off by a crash
            shutil.rmtree(stale, ignore_errors=True)
        built: list[MasterInfo] = []
        failed: list[str] = []
        tried: set[tuple[FrameKind, str]] = set()
        while due := [wanted for wanted in self.due() if wanted not in tried]:
            kind, group = due[0]
            tried.add((kind, group))
            try:
                built.append(self.build(kind, group))
            except (CalibrationError, OSError, ValueError) as exc:
                failed.append(f"{kind.value} group {group}: {exc}")
        return built, failed

    def build(self, kind: FrameKind, group: str) -> MasterInfo:
        """Combine a group's newest frames into its master, write it, and prune older frames.
        Frames that cannot be read any more are deleted and left out."""
        members = self._members(kind, group)[-self.max_frames :]
        bias = self._master(self._bias_info(group)) if kind is not FrameKind.BIAS else None
        used: list[str] = []
        prepared: list[Path] = []
        levels: list[float] = []
        exptime: float | None = None
        filter_name: str | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".build-") as scratch:
            for member in members:
                try:
                    frame = read_frame(member)
                except FrameError:
                    member.unlink(missing_ok=True)
                    continue
                data = frame.data if bias is None else frame.data - bias.data
                level = float(np.nanmedian(data))
                if kind is FrameKind.FLAT and not level > 0:
                    member.unlink(missing_ok=True)  # a flat of no light cannot be scaled
                    continue
                levels.append(level)
                path = Path(scratch) / f"{len(prepared):03d}.fits"
                fits.PrimaryHDU(np.asarray(data, dtype=np.float32)).writeto(path)
                prepared.append(path)
                used.append(member.name)
                exptime, filter_name = frame.identity.exptime_s, frame.identity.filter
                geometry = geometry_of(frame)
            if not prepared:
                raise CalibrationError(f"{kind.value} group {group}: no readable frame left")
            scale = None if kind is not FrameKind.FLAT else 1.0 / np.asarray(levels)
            combined = combine_masters(prepared, scale=scale)
        if kind is FrameKind.FLAT:
            try:
                combined = normalised_flat(combined)
            except ValueError as exc:
                raise CalibrationError(f"flat group {group}: {exc}") from exc
        info = MasterInfo(
            kind=kind,
            group=group,
            shape=geometry.shape,
            binning=geometry.binning,
            exptime_s=exptime if kind is FrameKind.DARK else None,
            filter=filter_name if kind is FrameKind.FLAT else None,
            frames=used,
            built_at=datetime.now(UTC),
        )
        self._write_master(info, combined)
        for old in self._members(kind, group)[: -self.max_frames]:
            old.unlink(missing_ok=True)
        return info

    def infos(self) -> list[MasterInfo]:
        """Every master there is."""
        folder = self.root / MASTERS_DIR
        if not folder.is_dir():
            return []
        return [
            MasterInfo.model_validate_json(path.read_text())
            for path in sorted(folder.glob("*.json"))
        ]

    def info(self, kind: FrameKind, group: str) -> MasterInfo | None:
        """The master of one group, if it has one."""
        path = self._master_path(kind, group).with_suffix(".json")
        return MasterInfo.model_validate_json(path.read_text()) if path.is_file() else None

    def masters_for(self, frame: Frame) -> MasterSet:
        """The masters that suit a science frame, with notes naming masters that exist but do
        not fit it (another geometry or filter)."""
        geometry = geometry_of(frame)
        infos = self.infos()
        notes: list[str] = []
        chosen: dict[FrameKind, MasterInfo] = {}
        for kind in (FrameKind.BIAS, FrameKind.DARK, FrameKind.FLAT):
            of_kind = [info for info in infos if info.kind is kind]
            fitting = [info for info in of_kind if info.geometry == geometry]
            if kind is FrameKind.FLAT and fitting:
                in_filter = [info for info in fitting if info.filter == frame.identity.filter]
                if not in_filter:
                    filters = ", ".join(sorted(repr(info.filter) for info in fitting))
                    notes.append(
                        f"no master flat in filter {frame.identity.filter!r} (there are "
                        f"master flats in {filters}): not flat-fielded"
                    )
                fitting = in_filter
            if fitting:
                chosen[kind] = _nearest_exposure(fitting, frame.identity.exptime_s)
            elif of_kind:
                newest = max(of_kind, key=lambda info: info.built_at)
                notes.append(mismatch_note(kind, newest.geometry, geometry))
        return MasterSet(
            bias=self._master(chosen.get(FrameKind.BIAS)),
            dark=self._master(chosen.get(FrameKind.DARK)),
            flat=self._master(chosen.get(FrameKind.FLAT)),
            notes=tuple(notes),
        )

    def calibrate(self, frame: Frame, *, saturation_adu: float | None = None) -> CalibratedFrame:
        """The frame calibrated with the masters that suit it (`imaging.calibration`)."""
        return calibrate_frame(frame, self.masters_for(frame), saturation_adu=saturation_adu)

    def _members(self, kind: FrameKind, group: str) -> list[Path]:
        """A group's frames, oldest first (by the time the camera wrote them)."""
        folder = self.root / FRAMES_DIR / kind.value / group
        if not folder.is_dir():
            return []
        files = [path for path in folder.iterdir() if path.is_file()]
        return sorted(files, key=lambda path: (path.stat().st_mtime_ns, path.name))

    def _bias_info(self, group: str) -> MasterInfo | None:
        """The master bias of a dark or flat group's geometry (the group name starts with it)."""
        return self.info(FrameKind.BIAS, "-".join(group.split("-")[:2]))

    def _master_path(self, kind: FrameKind, group: str) -> Path:
        return self.root / MASTERS_DIR / f"{kind.value}-{group}.fits"

    def _master(self, info: MasterInfo | None) -> Master | None:
        """A master's pixels (the last one of each kind read stays in memory)."""
        if info is None:
            return None
        path = self._master_path(info.kind, info.group)
        try:
            mtime_ns = path.stat().st_mtime_ns
        except OSError:
            return None
        loaded = self._loaded.get(info.kind)
        if loaded is not None and loaded[:2] == (path, mtime_ns):
            return loaded[2]
        data = np.asarray(fits.getdata(path), dtype=np.float32)
        master = Master(
            info.kind, data, info.geometry, len(info.frames), info.exptime_s, info.filter
        )
        self._loaded[info.kind] = (path, mtime_ns, master)
        return master

    def _write_master(self, info: MasterInfo, data: np.ndarray) -> None:
        path = self._master_path(info.kind, info.group)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = fits.Header()
        header["IMAGETYP"] = f"MASTER {info.kind.value.upper()}"
        header["NCOMBINE"] = (len(info.frames), "frames combined (sigma-clipped median)")
        header["XBINNING"], header["YBINNING"] = info.binning
        if info.exptime_s is not None:
            header["EXPTIME"] = info.exptime_s
        if info.filter is not None:
            header["FILTER"] = info.filter
        partial = path.with_name(f".{path.name}.part")
        fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(partial, overwrite=True)
        os.replace(partial, path)
        described = path.with_name(f".{path.stem}.json.part")
        described.write_text(info.model_dump_json(indent=2))
        os.replace(described, path.with_suffix(".json"))


def _nearest_exposure(infos: list[MasterInfo], exptime_s: float | None) -> MasterInfo:
    """The master whose exposure time is nearest the frame's (by ratio), else the newest."""
    timed = [info for info in infos if info.exptime_s]
    if not exptime_s or not timed:
        return max(infos, key=lambda info: info.built_at)
    return min(timed, key=lambda info: abs(math.log(info.exptime_s / exptime_s)))  # type: ignore[operator]


def _unusable(frame: Frame, kind: FrameKind, saturation_adu: float | None) -> str | None:
    """Why a calibration frame cannot go into a master: saturated, or a dark without time."""
    if kind is FrameKind.DARK and not frame.identity.exptime_s:
        return f"a dark frame needs an EXPTIME above 0 (it has {frame.identity.exptime_s})"
    if saturation_adu is None:
        return None
    with np.errstate(invalid="ignore"):
        fraction = float(np.count_nonzero(frame.data >= saturation_adu)) / frame.data.size
    if fraction > MAX_SATURATED_FRACTION:
        return (
            f"{fraction:.1%} of its pixels are saturated (at {saturation_adu:g} ADU), above "
            f"the {MAX_SATURATED_FRACTION:.0%} a {kind.value} frame may have"
        )
    return None


def _suffix(name: str) -> str:
    """The file's FITS suffix, compression included ('.fits.gz'), '.fits' when unsaid."""
    suffixes = [suffix.lower() for suffix in Path(name).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in COMPRESSED_SUFFIXES:
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ".fits"


def _count(folder: Path) -> int:
    return sum(1 for path in folder.iterdir() if path.is_file()) if folder.is_dir() else 0


def _place(source: Path, target: Path) -> None:
    """Hard-link `source` at `target` (copy when it cannot be linked), written under a
    temporary name and renamed, so a half-copied file is never taken for a member."""
    partial = target.with_name(f".{target.name}.part")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:
        shutil.copy2(source, partial)
    os.replace(partial, target)
