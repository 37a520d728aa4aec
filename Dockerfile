# syntax=docker/dockerfile:1
# trustwatch image: the Python package on a slim Python 3.11 base, running as an unprivileged user.
#   docker build -t ghcr.io/trustwatch/trustwatch:0.1.0 .
# The Helm chart runs it with a read-only root filesystem; /tmp and the state directory are volumes.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="trustwatch" \
      org.opencontainers.image.description="Admission webhook for cosign-signed images and PolicyReport metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/*.whl \
 && groupadd --system --gid 65532 trustwatch \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/trustwatch --create-home \
      --shell /usr/sbin/nologin trustwatch
USER 65532:65532
WORKDIR /var/lib/trustwatch
ENV XDG_STATE_HOME=/var/lib/trustwatch
EXPOSE 8080 9443
ENTRYPOINT ["trustwatch"]
CMD ["serve"]
