# Panorama's four images: one target per component, the service it packages named by SERVICE.
# Build from the repository root (`make images` builds all four; infra/images.py holds the arguments), e.g.:
#   podman build --target io --build-arg SERVICE=io -t panorama/io:dev .
#   podman build --target video-worker --build-arg SERVICE=video_worker --build-arg RUNTIME_PACKAGES=ffmpeg \
#     -t panorama/video-worker:dev .
# Debian's own Python (3.11 on bookworm), so the image tested on CI machines is the image shipped.

FROM debian:bookworm-slim AS build
ARG HATCHLING_VERSION=1.33.0
ARG SERVICE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=gateway|io|compute|video_worker" >&2; exit 1; }
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
# The build backend lives in its own venv: it builds the wheels and never enters the image.
RUN python3 -m venv /opt/build && /opt/build/bin/pip install "hatchling==${HATCHLING_VERSION}"
RUN python3 -m venv /opt/venv
# Third-party dependencies first (pinned and hashed by `make lock`), so a source change reuses this layer.
COPY services/${SERVICE}/requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes --no-deps --only-binary :all: -r /tmp/requirements.txt
COPY services/core/pyproject.toml /src/core/pyproject.toml
COPY services/core/src /src/core/src
COPY services/${SERVICE}/pyproject.toml /src/service/pyproject.toml
COPY services/${SERVICE}/src /src/service/src
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels /src/core /src/service \
 && /opt/venv/bin/pip install --no-deps /tmp/wheels/*.whl \
 && /opt/venv/bin/pip uninstall -y pip

FROM debian:bookworm-slim AS runtime
# What the component runs besides Python, in the same apt transaction (a second one made the worker's
# image 80 MB larger): ffmpeg for the video worker, nothing for the others, whose images share this layer.
ARG RUNTIME_PACKAGES=""
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 ca-certificates ${RUNTIME_PACKAGES} \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --gid 0 --home-dir /app --no-create-home --shell /usr/sbin/nologin panorama \
 && mkdir -p /app && chown 10001:0 /app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app

# Each target checks that the venv holds its own service's package (a target built with another
# SERVICE fails here, not at its first start), then runs as a numeric user, so Kubernetes can verify runAsNonRoot
# without reading /etc/passwd. Exec-form entrypoints: the server is PID 1 and receives SIGTERM itself
# (graceful shutdown on pod termination). They are the commands the chart renders.

FROM runtime AS gateway
RUN python3 -c "import panorama.gateway"
ENV PANORAMA_BIND=0.0.0.0:8000
USER 10001
EXPOSE 8000
ENTRYPOINT ["gunicorn", "-c", "python:panorama.core.gunicorn_conf", "--bind", "0.0.0.0:8000", "panorama.gateway.app:create_app()"]

FROM runtime AS io
RUN python3 -c "import panorama.io"
ENV PANORAMA_BIND=0.0.0.0:8001
USER 10001
EXPOSE 8001
ENTRYPOINT ["gunicorn", "-c", "python:panorama.core.gunicorn_conf", "--bind", "0.0.0.0:8001", "panorama.io.app:create_app()"]

FROM runtime AS compute
RUN python3 -c "import panorama.compute"
ENV PANORAMA_BIND=0.0.0.0:8002
USER 10001
EXPOSE 8002
ENTRYPOINT ["gunicorn", "-c", "python:panorama.core.gunicorn_conf", "--bind", "0.0.0.0:8002", "panorama.compute.app:create_app()"]

FROM runtime AS video-worker
RUN python3 -c "import panorama.video_worker"
# Only the worker runs ffmpeg and ffprobe (RUNTIME_PACKAGES=ffmpeg).
RUN command -v ffmpeg && command -v ffprobe
USER 10001
ENTRYPOINT ["celery", "-A", "panorama.video_worker.celery_app", "worker", "--loglevel", "INFO"]
