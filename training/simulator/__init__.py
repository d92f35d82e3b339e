"""The sky simulator: raw FITS frames with known conditions, labels and transients.

It is the training ground of the quality CNN and the transient detector, and the demo's camera.
`sample_conditions` draws conditions for a label, `simulate_frame` renders a frame under them,
`write_frame` writes it with its truth, `simulate_pair` makes a reference/new pair with injected
transients (optionally on galaxies), and `write_labelled_set` writes a good/medium/bad training
set. Every field holds stars (`starfield.py`) and galaxies (`galaxies.py`).
"""

from training.simulator.camera import SimCamera
from training.simulator.conditions import ObservingConditions, label_conditions, sample_conditions
from training.simulator.dataset import write_labelled_set
from training.simulator.fitsio import read_truth, truth_path, write_frame
from training.simulator.frame import SimulatedFrame, simulate_frame
from training.simulator.galaxies import GalaxyCatalogue
from training.simulator.pairs import DEFAULT_NIGHT, SimulatedPair, simulate_pair
from training.simulator.pointing import DEFAULT_SITE_LOCATION, DEFAULT_SITE_NAME
from training.simulator.starfield import StarCatalogue
from training.simulator.truth import FrameTruth, InjectedTransient

__all__ = [
    "DEFAULT_NIGHT",
    "DEFAULT_SITE_LOCATION",
    "DEFAULT_SITE_NAME",
    "FrameTruth",
    "GalaxyCatalogue",
    "InjectedTransient",
    "ObservingConditions",
    "SimCamera",
    "SimulatedFrame",
    "SimulatedPair",
    "StarCatalogue",
    "label_conditions",
    "read_truth",
    "sample_conditions",
    "simulate_frame",
    "simulate_pair",
    "truth_path",
    "write_frame",
    "write_labelled_set",
]
