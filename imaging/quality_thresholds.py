"""The physical thresholds that define good / medium / bad, in one table.

The simulator labels its frames with them (from the true conditions) and the site explains
its verdicts with them (from the measured metrics), so both speak the same physics. The seed's
guide: good = clear stars, low background, good focus; medium = some clouds, slightly out of
focus, minor issues; bad = heavy clouds, tracking errors, severe artefacts.

Each criterion has a `good` limit and a `bad` limit: a value on the good side of `good` is
good, one beyond `bad` is bad, and one in between is medium. A frame takes its worst grade.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protos import QualityLabel

Direction = Literal["lower_is_better", "higher_is_better"]


class Limit(BaseModel):
    """Where one criterion turns from good to medium, and from medium to bad."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    good: float
    bad: float
    unit: str
    direction: Direction = "lower_is_better"

    def grade(self, value: float) -> QualityLabel:
        """The grade of one measured or true value."""
        if self.direction == "lower_is_better":
            if value <= self.good:
                return QualityLabel.GOOD
            return QualityLabel.MEDIUM if value <= self.bad else QualityLabel.BAD
        if value >= self.good:
            return QualityLabel.GOOD
        return QualityLabel.MEDIUM if value >= self.bad else QualityLabel.BAD


class QualityThresholds(BaseModel):
    """The fleet's definition of frame quality (defaults suit 0.3-2 arcsec/px cameras)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seeing: Limit = Field(
        default=Limit(good=2.5, bad=4.0, unit="arcsec"),
        description="Stellar FWHM from the atmosphere.",
    )
    transparency: Limit = Field(
        default=Limit(good=0.8, bad=0.4, unit="ratio", direction="higher_is_better"),
        description="Fraction of starlight reaching the detector (1 = photometric).",
    )
    trailing: Limit = Field(
        default=Limit(good=1.5, bad=5.0, unit="arcsec"),
        description="Length of the star trails from tracking error during the exposure.",
    )
    ellipticity: Limit = Field(
        default=Limit(good=0.25, bad=0.5, unit="1-b/a"),
        description="Measured counterpart of trailing: median star ellipticity.",
    )
    focus: Limit = Field(
        default=Limit(good=1.0, bad=4.0, unit="arcsec"),
        description="Defocus blur: diameter of the out-of-focus donut.",
    )
    sky_brightness: Limit = Field(
        default=Limit(good=19.5, bad=17.5, unit="mag/arcsec2", direction="higher_is_better"),
        description="Sky surface brightness (moonlight, twilight); brighter is worse.",
    )
    saturated_fraction: Limit = Field(
        default=Limit(good=0.001, bad=0.01, unit="fraction"),
        description="Fraction of pixels at saturation.",
    )
    satellite_trails: Limit = Field(
        default=Limit(good=0, bad=1, unit="count"),
        description="Satellite or aircraft trails crossing the frame.",
    )


def favourable_bound(value: float, error: float | None, limit: Limit) -> float:
    """A measured value moved by its 1-sigma error towards the good side of `limit`: a frame is
    graded worse only on evidence, not on noise."""
    if error is None:
        return value
    return value - error if limit.direction == "lower_is_better" else value + error


def worst(grades: list[QualityLabel]) -> QualityLabel:
    """The worst of several grades (good < medium < bad)."""
    order = [QualityLabel.GOOD, QualityLabel.MEDIUM, QualityLabel.BAD]
    return max(grades, key=order.index, default=QualityLabel.GOOD)
