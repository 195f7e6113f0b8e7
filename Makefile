# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= all,dev,docs
MTCNN_WEIGHTS_SPEC ?= facenet-pytorch==2.6.0

.PHONY: install demo test lint bench docs clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	# MTCNN's weights (face masking's small-face detector, opreid_bench/splits/mtcnn.py) ship in facenet-pytorch's
	# wheel. Only those files are read, never the package's code, and its requirements (an old torch) would replace
	# the build above: hence --no-deps.
	$(PIP) install --quiet --no-deps "$(MTCNN_WEIGHTS_SPEC)"
	touch $@

install: $(VENV)/.installed

# With a local copy of torchvision's ImageNet MobileNetV2 (never downloaded) the demo fine-tunes it; without one it
# trains the compact resnet_mini from random weights (opreid_bench/demo.py, DEMO_RECIPES).
DEMO_WEIGHTS ?= $(wildcard ../shared/weights/mobilenet_v2-b0353104.pth)

demo: install
	$(VENV)/bin/opreid-bench demo $(if $(DEMO_WEIGHTS),--pretrained $(DEMO_WEIGHTS))

test: install
	$(PY) -m pytest -q

# The manual, built offline into site/ (strict: a broken link or a missing API object is an error).
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: install
	$(VENV)/bin/ruff check opreid_bench tests benchmarks

bench: install
	$(PY) benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
