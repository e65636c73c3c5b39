# syntax=docker/dockerfile:1
# cutout: one image for every service (worker, watch, http, flower, health); the command picks.
#   docker build -t cutout .                                  (model fetched on first start)
#   docker build -t cutout --build-arg MODEL=u2net .          (model baked in, verified)
#   docker build -t cutout:gpu --build-arg ONNXRUNTIME="onnxruntime-gpu[cuda,cudnn]" .
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY cutout ./cutout
COPY cutout_cli ./cutout_cli
COPY cutout_http ./cutout_http
COPY settings ./settings
COPY worker ./worker
COPY watcher ./watcher
ARG ONNXRUNTIME=onnxruntime
# EXTRAS=fast adds OpenVINO for CUTOUT_PRECISION=bf16|int8 (README "Performance").
ARG EXTRAS=""
# Every dependency ships wheels: no compiler is needed, here or in the final image.
RUN /opt/venv/bin/pip install --only-binary=:all: ".${EXTRAS:+[$EXTRAS]}" \
    && if [ "$ONNXRUNTIME" != "onnxruntime" ]; then \
         /opt/venv/bin/pip uninstall -y onnxruntime \
         && /opt/venv/bin/pip install --only-binary=:all: "$ONNXRUNTIME"; \
       fi
ARG MODEL=""
# Pulled through the same code as `cutout models pull`: checksum-verified, atomic.
RUN mkdir /models \
    && if [ -n "$MODEL" ]; then CUTOUT_MODEL_HOME=/models /opt/venv/bin/cutout models pull "$MODEL"; fi

FROM python:${PYTHON_VERSION}-slim
RUN groupadd --system --gid 10001 cutout \
    && useradd --system --uid 10001 --gid cutout --create-home --home-dir /home/cutout cutout \
    && mkdir -p /data/inbox /data/outbox /data/failed /data/done \
    && chown -R cutout:cutout /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=cutout:cutout /models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CUTOUT_MODEL_HOME=/models \
    CUTOUT_INBOX=/data/inbox \
    CUTOUT_OUTBOX=/data/outbox \
    CUTOUT_FAILED_DIR=/data/failed \
    CUTOUT_DONE_DIR=/data/done \
    CUTOUT_METRICS_ADDRESS=0.0.0.0
USER 10001:10001
WORKDIR /home/cutout
VOLUME ["/models", "/data"]
EXPOSE 7000 9808 9809
# The worker's check by default; compose gives the watcher, flower and the gateway their own.
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
    CMD ["sh", "-c", "cutout health --worker-host \"$HOSTNAME\""]
ENTRYPOINT ["cutout"]
CMD ["worker"]
