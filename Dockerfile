# driftstream: the processor (`driftstream run`) and the load tester, in one image.
#   docker build -t driftstream .
#   docker run --rm -p 9464:9464 -v $PWD/deploy/driftstream.yaml:/etc/driftstream/driftstream.yaml:ro driftstream
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/var/cache/driftstream/numba

RUN useradd --system --uid 10001 --home-dir /home/driftstream --create-home driftstream \
    && mkdir -p /var/cache/driftstream/numba /etc/driftstream /work \
    && chown -R driftstream /var/cache/driftstream /work

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY detectors detectors
COPY streams streams
COPY loadtest loadtest
RUN pip install ".[parquet]"
COPY deploy/driftstream.yaml /etc/driftstream/driftstream.yaml

USER driftstream
# Compile the detector kernels into the image's cache, so the first batch does not pay for it.
RUN python -c "from detectors import warm_kernels; warm_kernels()"

WORKDIR /work
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=2)" || exit 1
ENTRYPOINT ["driftstream"]
CMD ["run", "-c", "/etc/driftstream/driftstream.yaml"]
