# One image for every ordersync process: the emulator, Celery workers, Flower and producers.
#   docker build -t ordersync:local .
#   docker compose up --scale worker=4
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Build from a copy of the source (.dockerignore keeps .venv, .git and caches out) and install it
# as a regular package: the console script `ordersync` and `celery -A tasks` must work from the
# installed distribution, not from a source checkout on sys.path.
WORKDIR /src
COPY . .
RUN pip install . \
 && useradd --create-home --uid 10001 ordersync

# Run from a directory without the sources, so an import that only works from the checkout
# fails here instead of in production. No root: nothing ordersync does needs it.
USER ordersync
WORKDIR /home/ordersync
ENV ORDERSYNC_HOME=/home/ordersync/.ordersync

EXPOSE 8765 5555
CMD ["ordersync", "--help"]
