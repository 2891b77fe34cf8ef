# Two entry points, each doing all the set-up on a fresh machine:
#   make demo   trains, tests and plots EfficientNet-DSP on the embedded
#               synthetic data set (no download, a few CPU minutes)
#   make test   runs the test-suite
# and, with the real data beside the checkout,
#   make quick-real   trains and tests EfficientNet-DSP-B0 on it (CPU, ~22 min)
# Both create or reuse the virtualenv .venv with the stack pinned in
# requirements/runtime.txt and mmdsp installed in editable mode.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmdsp-installed
DEMO_DATA ?= data/synthetic_all
DEMO_WORK ?= work_dirs/demo
QUICK_CFG := configs/quick/effdsp-b0_all_cpu.py
QUICK_WORK ?= work_dirs/quick_real

.PHONY: install demo quick-real test clean-demo

install: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/tests.txt \
		requirements/optional.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

demo: $(STAMP)
	$(PY) tools/demo.py --data $(DEMO_DATA) --work-dir $(DEMO_WORK)

# EfficientNet-DSP-B0 on the real data ($$MMDSP_DATA_ROOT, else
# ../shared/data/all_leukemia/Original): about 22 min on a 2-core CPU.
quick-real: $(STAMP)
	$(PY) tools/train.py $(QUICK_CFG) --work-dir $(QUICK_WORK)
	$(PY) tools/test.py $(QUICK_CFG) \
		$$(ls -t $(QUICK_WORK)/best_*.pth | head -n 1) --work-dir $(QUICK_WORK)

test: $(STAMP)
	$(PY) -m pytest tests

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_WORK)
