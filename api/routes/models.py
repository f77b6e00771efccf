"""Pretrained models: what the serving workers can load (``GET /api/v1/models``)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.errors import AUTH_ERRORS
from api.schemas.models import ModelsPublic
from api.worker_models import offered_models

router = APIRouter(prefix="/models", tags=["models"], responses=AUTH_ERRORS)


@router.get("", response_model=ModelsPublic)
def list_models(_user: CurrentUser, session: SessionDep, settings: SettingsDep) -> ModelsPublic:
    """The pretrained models the serving workers offer (the union by name; empty while no
    worker serves): name, modality, output size, licence, loader, source, fingerprint and how
    many workers offer each. A job's ``backbones`` may name them (``encoder: pretrained``)."""
    models = list((offered_models(session, settings) or {}).values())
    return ModelsPublic(data=models, count=len(models))
