"""The site's references on disk: one folder per field, the index of fields, and their refresh.

`<root>/<field_id>/` holds `reference.fits` (image with WCS, NOISE, PSF and the STARS table),
`reference.json` (`ReferenceInfo`) and `members/` (the frames it was made of, so a better frame
can trigger a rebuild). A frame belongs to the stored reference whose footprint covers most of
it (`min_overlap_fraction` of the frame at least, the search's setting). A search loads the
image, PSF and stars only: the noise map (64 MB on a 4096² frame) is for people and for the star
catalogue, which is saved with it, and a search needs only its median
(`ReferenceInfo.noise_adu`). A folder is written beside its old one and renamed into place, so
a reader never sees half a reference. Building is `imaging.transients.references`.
"""

import shutil
from functools import partial
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from imaging.fits_reader import Frame, read_frame
from imaging.transients.align import overlap_fraction, wcs_transform
from imaging.transients.config import TransientSearchSettings
from imaging.transients.references import (
    REFERENCE_MEMBERS,
    MemberSource,
    PreparedFrame,
    Reference,
    ReferenceError,
    ReferenceInfo,
    ReferenceMember,
    prepare_frame,
    reference_from,
    reference_stars,
)
from imaging.transients.sources import StarTable

STAR_COLUMNS = tuple(StarTable.__dataclass_fields__)
INFO_FILE = "reference.json"
IMAGE_FILE = "reference.fits"
MEMBERS_DIR = "members"


class ReferenceStore:
    """The references of one site, one folder per field under `root`."""

    def __init__(self, root: Path, settings: TransientSearchSettings | None = None) -> None:
        self.root = Path(root)
        self.min_overlap_fraction = (settings or TransientSearchSettings()).min_overlap_fraction
        """How much of a frame a field's reference must cover for the frame to belong to it."""

    def infos(self) -> list[ReferenceInfo]:
        """Every stored reference, by field id."""
        if not self.root.is_dir():
            return []
        return [
            ReferenceInfo.model_validate_json((folder / INFO_FILE).read_text())
            for folder in sorted(self.root.iterdir())
            if (folder / INFO_FILE).is_file()
        ]

    def save(self, reference: Reference, members: list[Frame] | None = None) -> Path:
        """Write a reference (and optionally the frames it was built from) under its field."""
        folder = self.root / reference.info.field_id
        partial = folder.with_name(f".{folder.name}.part")
        shutil.rmtree(partial, ignore_errors=True)
        (partial / MEMBERS_DIR).mkdir(parents=True)
        header = reference.wcs.to_header()
        header["BUNIT"] = ("adu", "sky-subtracted, anchor frame flux units")
        if reference.noise is None:
            raise ReferenceError("a reference loaded without its noise map cannot be saved")
        stars = {name: getattr(reference.stars, name) for name in STAR_COLUMNS}
        fits.HDUList(
            [
                fits.PrimaryHDU(reference.image, header=header),
                fits.ImageHDU(reference.noise, header=header, name="NOISE"),
                fits.ImageHDU(reference.psf, name="PSF"),
                fits.BinTableHDU.from_columns(
                    [fits.Column(name, "D", array=values) for name, values in stars.items()],
                    name="STARS",
                ),
            ]
        ).writeto(partial / IMAGE_FILE)
        kept = {m.sha256 for m in reference.info.members}
        for frame in members or []:
            if frame.identity.sha256 in kept:
                shutil.copyfile(frame.path, partial / MEMBERS_DIR / f"{frame.identity.sha256}.fits")
        old_members = folder / MEMBERS_DIR
        if old_members.is_dir():
            for path in old_members.iterdir():
                if path.stem in kept and not (partial / MEMBERS_DIR / path.name).exists():
                    shutil.copyfile(path, partial / MEMBERS_DIR / path.name)
        (partial / INFO_FILE).write_text(reference.info.model_dump_json(indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        return folder

    def load(self, field_id: str) -> Reference:
        """The stored reference of a field, for searching (without its noise map)."""
        folder = self.root / field_id
        info = ReferenceInfo.model_validate_json((folder / INFO_FILE).read_text())
        with fits.open(folder / IMAGE_FILE) as hdul:
            image = np.asarray(hdul[0].data, dtype=np.float32)
            psf = np.asarray(hdul["PSF"].data, dtype=np.float32)
            wcs = WCS(hdul[0].header)
            if "STARS" in hdul:
                table = hdul["STARS"].data
                stars = StarTable(*(np.asarray(table[name], dtype=float) for name in STAR_COLUMNS))
            else:  # saved before the star table was: find the stars again
                stars = reference_stars(image, np.asarray(hdul["NOISE"].data, dtype=np.float32))
        return Reference(image, None, wcs, stars, psf, info)

    def field_for(
        self, wcs: WCS, shape: tuple[int, int], *, min_overlap_fraction: float | None = None
    ) -> ReferenceInfo | None:
        """The stored reference covering most of a frame (at least `min_overlap_fraction` of
        it, the store's own by default), if any."""
        if min_overlap_fraction is None:
            min_overlap_fraction = self.min_overlap_fraction
        best, best_overlap = None, min_overlap_fraction
        for info in self.infos():
            ref_wcs = _info_wcs(self.root / info.field_id)
            try:
                overlap = overlap_fraction(
                    wcs_transform(wcs, ref_wcs, shape), shape, (info.height_px, info.width_px)
                )
            except ValueError:
                continue
            if overlap >= best_overlap:
                best, best_overlap = info, overlap
        return best

    def offer(self, frame: Frame) -> ReferenceInfo | None:
        """Consider a good frame for its field's reference: start a field, or rebuild the
        reference when the frame is deeper than its shallowest member (or it has room).

        Returns the new reference's info when it changed, else None.
        """
        candidate = prepare_frame(frame)
        info = self.field_for(candidate.wcs, candidate.sky.image.shape)
        self.root.mkdir(parents=True, exist_ok=True)
        if info is None:
            reference = reference_from([MemberSource.ready(candidate)], None, self.root)
            self.save(reference, [frame])
            return reference.info
        folder = self.root / info.field_id
        if any(m.sha256 == frame.identity.sha256 for m in info.members):
            return None
        worst = min(m.depth_score for m in info.members)
        if len(info.members) >= REFERENCE_MEMBERS and candidate.member.depth_score <= worst:
            return None
        # prepared again when its turn comes, so its pixels are not held through the rebuild
        offered = MemberSource(candidate.member, partial(prepare_frame, frame))
        del candidate
        members = [MemberSource(m, partial(_prepared_member, folder, m)) for m in info.members]
        ranked = sorted(
            [*members, offered],
            key=lambda f: f.member.depth_score,
            reverse=True,
        )
        reference = reference_from(ranked[:REFERENCE_MEMBERS], info.field_id, self.root)
        self.save(reference, [frame])
        return reference.info


def _info_wcs(folder: Path) -> WCS:
    return WCS(fits.getheader(folder / IMAGE_FILE))


def _prepared_member(folder: Path, member: ReferenceMember) -> PreparedFrame:
    return prepare_frame(read_frame(folder / MEMBERS_DIR / f"{member.sha256}.fits"))
