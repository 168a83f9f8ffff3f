# The two commands of the README: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system.sh package.json
	scripts/install-system.sh
	test -x $(PY) || python3 -m venv $(VENV)
	# torch pinned in the same command as its dependants: 2.13.0 is the local CPU wheel
	$(VENV)/bin/pip install torch==2.13.0 -e ".[all]"
	# pyrender pins PyOpenGL 3.1.0, which lacks OSMesa support
	$(VENV)/bin/pip install "PyOpenGL==3.1.10"
	# Khronos glTF validator (npm) for the GLB export tests
	npm ci --no-audit --no-fund
	# Blender 5 for tests/test_blender.py, in its own environment: the bpy wheel pins numpy < 2
	test -x $(VENV)/blender/bin/python || python3 -m venv $(VENV)/blender
	$(VENV)/blender/bin/pip install "bpy==5.0.1"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/facemotion generate examples/cmu_arctic_slt_a0009.wav -o out/demo --overwrite

test: setup
	$(PY) -m pytest
