"""The worker loop and how it is assembled from a spec."""

from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import RunStats, Worker

__all__ = ["RunStats", "Worker", "build_worker"]
