# The README's two commands are `make run` and `make test`; both set up what is missing first.
.PHONY: setup run test test-gpu lint ui bench

VENV := .venv
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
# A batched run's planned and materialized partition events are written together
# (resources/sqlite_events.py): one planned event per partition is what lets a failed run mark
# exactly its partitions failed.
export DAGSTER_EVENT_BATCH_SIZE ?= 1000

setup:
	@bash scripts/setup.sh

run: setup
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/media-assets $(if $(MANIFEST),ingest $(MANIFEST),demo)

test: setup
	$(VENV)/bin/python -m pytest

# whisperx and pyannote pin a CUDA torch 2.8 (several GB), which the base's CPU torch 2.13 pin
# excludes: their own virtualenv from deploy/requirements-gpu.txt, as the GPU image does.
test-gpu: setup
	@[ -x .venv-gpu/bin/python ] || python3.11 -m venv .venv-gpu
	.venv-gpu/bin/pip install -q -r deploy/requirements-gpu.txt pytest==9.2.0 pytest-timeout==2.4.0
	.venv-gpu/bin/pip install -q --no-deps -e .
	.venv-gpu/bin/python -m pytest -p no:cacheprovider tests/test_gpu_engines.py

lint: setup
	$(VENV)/bin/ruff check .

ui: setup
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: setup
	$(VENV)/bin/python bench/web_extraction.py
	$(VENV)/bin/python bench/web_throughput.py
	$(VENV)/bin/python bench/video_paths.py
