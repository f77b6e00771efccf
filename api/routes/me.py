"""The current user."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser
from api.errors import AUTH_ERRORS
from api.schemas.users import UserPublic

router = APIRouter(tags=["me"], responses=AUTH_ERRORS)


@router.get("/me", response_model=UserPublic)
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
