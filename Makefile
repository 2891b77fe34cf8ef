# Two entry points, each doing all the set-up on a fresh machine:
#   make demo   trains, tests and plots EfficientNet-DSP on the embedded
#               synthetic data set (no download, a few CPU minutes)
#   make test   runs the test-suite
# Both create or reuse the virtualenv .venv with the stack pinned in
# requirements/runtime.txt and mmdsp installed in editable mode.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmdsp-installed
DEMO_DATA ?= data/synthetic_all
DEMO_WORK ?= work_dirs/demo
DEMO_CFG := configs/demo/effdsp_synthetic.py

.PHONY: install demo test clean-demo

install: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/tests.txt \
		requirements/optional.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

demo: $(STAMP)
	$(PY) tools/dataset_converters/make_synthetic_all.py $(DEMO_DATA) \
		--num-per-class 80
	MMDSP_DEMO_DATA=$(DEMO_DATA) $(PY) tools/train.py $(DEMO_CFG) \
		--work-dir $(DEMO_WORK)
	MMDSP_DEMO_DATA=$(DEMO_DATA) $(PY) tools/test.py $(DEMO_CFG) \
		$$(ls -t $(DEMO_WORK)/best_*.pth | head -n 1) --work-dir $(DEMO_WORK)
	MMDSP_DEMO_DATA=$(DEMO_DATA) $(PY) tools/analysis_tools/confusion_matrix.py \
		$(DEMO_CFG) $$(ls -t $(DEMO_WORK)/best_*.pth | head -n 1) \
		--show-path $(DEMO_WORK)/confusion_matrix.png
	@echo "demo done: $(DEMO_WORK)/confusion_matrix.png"

test: $(STAMP)
	$(PY) -m pytest tests

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_WORK)
