"""Names of the gpu pool: its task queue and operations (defined with every other pool's in
workflows/contracts.py, which the operator registry reads), its error types and settings.

Dependency-free (no torch): the API and the tests import it.
"""

from __future__ import annotations

from workflows.contracts import (
    GPU_CLASSIFY_ACTIVITY,
    GPU_EMBED_ACTIVITY,
    GPU_OPERATIONS,
    GPU_SIMILARITY_ACTIVITY,
    GPU_TASK_QUEUE,
)

__all__ = [
    "BAD_PARAMETER",
    "GPU_CLASSIFY_ACTIVITY",
    "GPU_EMBED_ACTIVITY",
    "GPU_OPERATIONS",
    "GPU_SIMILARITY_ACTIVITY",
    "GPU_TASK_QUEUE",
    "MODELS_ENV",
    "MODEL_UNAVAILABLE",
]

# ApplicationError types the pool raises; all are non-retryable: retrying cannot fix the request.
BAD_PARAMETER = "BadParameter"
MODEL_UNAVAILABLE = "ModelUnavailable"

# Environment variable naming the model registry file that replaces the built-in one.
MODELS_ENV = "AIMATRIX_GPU_MODELS"
