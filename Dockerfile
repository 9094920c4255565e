# Not built on the project's own machines (no Docker engine there): kept simple and checked by reading
# (tests/test_docker.py checks that the export stage's files are enough for the export).
# Stage 1 builds the ONNX models with the export-time packages; stage 2 carries only the runtime.
FROM python:3.11-slim AS models
RUN apt-get update && apt-get install -y --no-install-recommends npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt ./
COPY models/requirements.txt models/
RUN pip install --no-cache-dir -r requirements.txt
# only what the export reads: an edit elsewhere in searchcore/ does not export the models again
COPY searchcore/__init__.py searchcore/config.py searchcore/similarity.py searchcore/batching.py searchcore/
COPY searchcore/files/ searchcore/files/
COPY searchcore/encoding/ searchcore/encoding/
COPY models/ models/
ENV SEARCHCORE_MODEL_DIR=/opt/searchcore/models TF_CPP_MIN_LOG_LEVEL=2
# fp32 and the int8 build quantized from it (SEARCHCORE_PRECISION=int8 at run time chooses it)
RUN python -m searchcore.encoding.build --precision int8

FROM python:3.11-slim
RUN useradd --create-home --uid 1000 app && mkdir -p /data && chown app /data
WORKDIR /app
COPY requirements.txt ./
# the runtime only: not the export-time packages that requirements.txt names for a Space
RUN grep -v '^-r ' requirements.txt > /tmp/runtime.txt && pip install --no-cache-dir -r /tmp/runtime.txt
COPY --from=models /opt/searchcore/models /opt/searchcore/models
COPY searchcore/ searchcore/
COPY app.py ./
ENV SEARCHCORE_MODEL_DIR=/opt/searchcore/models \
    SEARCHCORE_HOME=/data \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860
USER app
VOLUME /data
EXPOSE 7860
# healthy once the app itself answers: not while its page says what it waits for, nor why it cannot start
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import json, urllib.request; c = json.load(urllib.request.urlopen('http://127.0.0.1:7860/config', timeout=4)); raise SystemExit(c.get('title') in (None, 'Image search: starting'))"]
# Add a folder with `-v /my/photos:/photos -e SEARCHCORE_INDEX_ROOTS=/photos` and `--images /photos`.
CMD ["python", "app.py"]
