"""Skyfleet's pixel science: pure functions and small classes on pixels and headers.

FITS reading and validation, the one frame→tensor preprocessing, image metrics, photometry,
trails, the quality verdict, references, difference imaging, detection, real/bogus inference,
and loading and verifying exported models. The site agent runs these as a service; training and
the benchmarks use the same code, so a frame is measured one way everywhere. Nothing here
imports a service (the import-linter contracts in `pyproject.toml` check it).
"""
