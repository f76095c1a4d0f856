"""The gpu pool's model registry, read-only: which models service tasks can name (`model` parameter).

Read from the registry file (`AIMATRIX_GPU_MODELS`, or the built-in one) on each call, without
importing torch: the API process never loads a model.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from api.deps import AnyUser
from api.errors import responses
from workers.gpu.registry import RegistryError, load_registry

router = APIRouter(tags=["models"])


class ModelPublic(BaseModel):
    name: str
    task: str = Field(description="embedding (zero-shot classify, embed, similarity) or classification (own head)")
    device: str = Field(description="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    dtype: str = Field(description="auto: float16 on CUDA, float32 on CPU")
    path: str = Field(description="the model directory as the registry names it")
    available: bool = Field(description="the directory holds a model (config.json) on this host")
    default: bool = Field(description="used when a service task names no model")
    revision: str | None = Field(description="declared revision; when null the gpu worker reports the weights' sha256")
    description: str


@router.get("/models", responses=responses(503, e503="The registry file is unreadable or invalid; `detail` says where"))
def list_models(user: AnyUser) -> list[ModelPublic]:
    """The models the gpu pool serves (`gpu.classify`, `gpu.embed`, `gpu.similarity`)."""
    try:
        registry = load_registry()
    except RegistryError as err:
        # the platform's configuration, not the request, is wrong: unavailable until an operator fixes it
        raise HTTPException(503, detail=f"the model registry is misconfigured: {err}") from None
    return [
        ModelPublic(
            name=spec.name,
            task=spec.task,
            device=spec.device,
            dtype=spec.dtype,
            path=spec.source,
            available=spec.available,
            default=spec.name == registry.default,
            revision=spec.revision,
            description=spec.description,
        )
        for spec in registry.models.values()
    ]
