# o2a worker image: `docker build -t o2a .` or `docker compose up --build`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Pinned dependencies first, so code edits do not invalidate this layer.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# The project itself; its dependencies are already installed from the lock.
COPY pyproject.toml README.md ./
COPY o2a/ o2a/
COPY workflows/ workflows/
COPY activities/ activities/
COPY workers/ workers/
COPY starters/ starters/
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build *.egg-info

# Unprivileged user. The outbox directory is created here, owned by that user, so a named
# volume mounted on it starts with the right owner.
RUN groupadd --system --gid 10001 o2a \
    && useradd --system --uid 10001 --gid o2a --home-dir /var/lib/o2a --shell /usr/sbin/nologin o2a \
    && mkdir -p /var/lib/o2a/outbox \
    && chown -R o2a:o2a /var/lib/o2a

ENV O2A_OUTBOX_DIR=/var/lib/o2a/outbox
WORKDIR /var/lib/o2a
USER o2a

CMD ["o2a", "worker"]
