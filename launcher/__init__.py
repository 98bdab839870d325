"""Run a real tritonserver for tests, the demo and local serving, without the NGC container."""

from launcher.install import find_tritonserver, is_available
from launcher.triton import TritonServer, TritonStartError

__all__ = ["TritonServer", "TritonStartError", "find_tritonserver", "is_available"]
