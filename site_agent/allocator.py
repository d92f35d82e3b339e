"""How the agent's process asks glibc's allocator to give memory back.

A long-running agent allocates 16-64 MB pixel buffers on several threads. glibc's defaults grow
the mmap threshold after each large free (up to 32 MB, so later buffers come from heap arenas
that are rarely returned) and give every thread its own arena. With a fixed 4 MB threshold and
two arenas, buffers go back to the system when freed: on the transient-search benchmark the
peak fell from 1.86 to 1.53 GB and the resting RSS from 1.0 GB to 0.66 GB. Linux/glibc only;
elsewhere it does nothing.
"""

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
ARENAS = 2


def return_large_buffers() -> bool:
    """Apply the settings (call before starting threads); whether glibc took them."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_ARENA_MAX, ARENAS)
    )
    log.debug("allocator tuned=%s", applied)
    return applied
