"""Transient detection at a site: references, difference imaging, detection and real/bogus.

The path for one frame (`search.search_transients`): pick the field's reference
(`references`), align it onto the new frame (`align`), fit an Alard-Lupton kernel that matches
the sharper image's PSF to the other's (`psf_match`), subtract (`subtract`), detect on the
difference with its noise map (`detect`), measure each candidate (`measure`), cut stamps
(`cutouts`) and keep those the real/bogus CNN believes (`realbogus`).
"""
