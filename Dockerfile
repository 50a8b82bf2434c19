# Router One: one image for every instance (docker compose: compose.yaml; Kubernetes: deploy/k8s/).
#
#   docker build -t routerone:0.1.0 .
#   docker run -p 8080:8080 -e OPENAI_API_KEY=... routerone:0.1.0          # SQLite in /var/lib/routerone
#
# Configuration comes from ROUTERONE_* variables and an optional file (ROUTERONE_CONFIG, e.g. a
# mounted /etc/routerone/routerone.toml); secrets from the environment or from mounted files that
# the config file names with { "$file" = "/run/secrets/..." } (see deploy/routerone.toml).

# -- build: a virtualenv with Router One and its dependencies (all ship binary wheels) ------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/routerone \
 && /opt/routerone/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/routerone/bin/pip install --only-binary=:all: /wheels/routerone-*.whl \
 && find /opt/routerone -name '__pycache__' -prune -exec rm -rf {} +

# -- runtime: the virtualenv only; no compilers, no build files, a non-root user --------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 routerone \
 && useradd --system --uid 10001 --gid routerone --home-dir /var/lib/routerone --create-home \
            --shell /usr/sbin/nologin routerone
COPY --from=build /opt/routerone /opt/routerone
ENV PATH=/opt/routerone/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ROUTERONE_HOST=0.0.0.0 \
    ROUTERONE_PORT=8080 \
    ROUTERONE_DATABASE_URL=sqlite:////var/lib/routerone/routerone.db \
    ROUTERONE_DRAIN_TIMEOUT_S=30
USER 10001:10001
WORKDIR /var/lib/routerone
EXPOSE 8080
# liveness: the process answers (readiness, /readyz, is for balancers and Kubernetes)
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
# SIGTERM drains: in-flight requests and streams finish (ROUTERONE_DRAIN_TIMEOUT_S), usage is flushed
STOPSIGNAL SIGTERM
ENTRYPOINT ["routerone"]
CMD ["serve"]
