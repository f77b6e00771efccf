"""The pretrained models the serving workers offer: the union by name of the ``models`` lists
of the workers whose presence is fresh (the window ``GET /ready`` uses,
``worker_presence_stale_s``). Read by ``GET /api/v1/models`` and by job creation's checks."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from api.schemas.models import ModelPublic
from infra.db import crud
from infra.db.models import utcnow
from infra.settings import Settings
from synib_spec.backbones import ModelInfo

log = logging.getLogger(__name__)


def offered_models(session: Session, settings: Settings) -> dict[str, ModelPublic] | None:
    """name -> ModelPublic (sorted by name) over the serving workers; None when no worker is
    serving (what they will offer is unknown: the worker that takes a job checks it)."""
    since = utcnow() - timedelta(seconds=settings.worker_presence_stale_s)
    lists = crud.list_worker_models(session, since=since)
    if not lists:
        return None
    union: dict[str, ModelPublic] = {}
    for models in lists:
        for raw in models:
            try:
                info = ModelInfo.from_json(raw)
            except (TypeError, KeyError):
                log.warning("a worker's model entry is malformed: %r", raw)
                continue
            known = union.get(info.name)
            if known is not None:
                known.workers += 1
                continue
            union[info.name] = ModelPublic(**info.to_json(), workers=1)
    return dict(sorted(union.items()))


def model_infos(offered: dict[str, ModelPublic] | None) -> dict[str, ModelInfo] | None:
    """The offered models as ``ModelInfo`` (what ``check_dataset_backbones`` takes)."""
    if offered is None:
        return None
    return {
        name: ModelInfo.from_json(m.model_dump(exclude={"workers"})) for name, m in offered.items()
    }
