"""How many calibration frames a master is combined from: the limits a site's settings check
against (`site_agent.settings`), apart from the pixel code so that reading settings loads no
astropy."""

MIN_FRAMES_PER_MASTER = 5
"""Frames a master is combined from at least. The sigma-clipped median of 5 frames has about
0.56 times one frame's noise (median efficiency 2/pi) and rejects a cosmic ray or a bad read in
any one of them; with 3 the clipping has too little to judge from."""
MAX_FRAMES_PER_MASTER = 25
"""Frames a master is combined from at most, the newest: its noise is then 0.25 times one
frame's, below a night sky's photon noise, and more would add disk, not quality."""
