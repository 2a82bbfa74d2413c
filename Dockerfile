# syntax=docker/dockerfile:1
# Build stage: a wheel and its dependencies in a virtual environment.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/exporter
COPY pyproject.toml README.md MANIFEST.in constraints.txt ./
COPY exporter ./exporter
# constraints.txt pins every dependency to what the tests ran with (scripts/constraints.py), so
# an image built later has the same libraries.
RUN /opt/exporter/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/exporter/bin/pip install --no-cache-dir --constraint constraints.txt .

# Runtime stage: the virtual environment only, run by an unprivileged user.
FROM python:3.11-slim
COPY --from=build /opt/exporter /opt/exporter
RUN groupadd --system --gid 10027 exporter \
 && useradd --system --uid 10027 --gid exporter --no-create-home --shell /usr/sbin/nologin exporter \
 && mkdir -p /etc/cucm-directory-exporter
# MALLOC_ARENA_MAX: glibc's per-thread arenas cost ~16 MB of RSS at a thousand nodes for
# nothing (bench/README.md, "Scale").
ENV PATH=/opt/exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2
# Mount the configuration at /etc/cucm-directory-exporter/config.yml (and secrets beside it or
# under /run/secrets); nothing is baked in. No VOLUME: an anonymous volume would hide a mount
# of the single file and outlive the container.
USER 10027:10027
EXPOSE 10027
# The binary asks itself for /-/healthy: `healthcheck` reads --web.listen-address and
# --web.config.file from PID 1's command line, so the check follows another port or TLS, and
# the image needs no HTTP client of its own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["cucm-directory-exporter", "healthcheck", "--timeout", "4"]
ENTRYPOINT ["cucm-directory-exporter"]
CMD ["--config.file=/etc/cucm-directory-exporter/config.yml"]
