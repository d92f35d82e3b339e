"""The agent's process asks glibc to return large buffers (this machine runs glibc)."""

import subprocess
import sys


def test_glibc_takes_the_allocator_settings_in_a_fresh_process():
    code = "from site_agent.allocator import return_large_buffers as r; print(r())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr
