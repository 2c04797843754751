# fpga_gan: `make demo` and `make test` are all a new user needs (see README.md).
# The virtual environment lives in .venv inside the repository and is (re)built when
# requirements.txt or pyproject.toml change.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
FINN_PLUS_VERSION := 1.6.1
PYTEST_ARGS ?=
QAT_INIT_STEPS ?= 5000
TRYON_FLOAT_STEPS ?= 10000
TRYON_QAT_STEPS ?= 9000
TRYON_QAT_DECAY_FROM ?= 4500
DCGAN_ARGS ?= --ngf 32 --lr 2e-4 --adv-weight 0.005 --threads 1

BOARD_VENV := .venv-board
BOARD_STAMP := $(BOARD_VENV)/.installed

.PHONY: install demo serve test test-all bench bench-cpu weights weights-studio tryon-ssim-rounds sim lint finn-build bitstream deploy clean help

help:
	@echo "make demo      set up .venv if needed, then run the try-on and design demo (build/demo/)"
	@echo "make serve     the fitting-room web page at http://127.0.0.1:8000/ (SERVE_ARGS=\"--backend sim\")"
	@echo "make test      set up .venv if needed, then run the test suite (slow RTL simulations left out)"
	@echo "make test-all  the whole test suite, slow simulations included"
	@echo "make install   set up .venv only"
	@echo "make bench-cpu measure CPU inference speed of the generators"
	@echo "make weights   retrain the shipped weights from scratch (CPU, about 2 hours, then weights-studio)"
	@echo "make weights-studio  retrain the design studio's editor, designer and classifier (CPU, about 2 hours)"
	@echo "make sim MODEL=tryon BOARD=pynq-z2   compile (if needed) and simulate in Verilator"
	@echo "make bench     measure fpga_gan against its alternatives (zoo + reference generators), write BENCHMARKS.md"
	@echo "make lint      Verilator lint of all RTL fpga_gan owns"
	@echo "make finn-build MODEL=tryon BOARD=pynq-z2   the directory FINN's builder runs on a Vivado machine"
	@echo "make bitstream MODEL=tryon BOARD=pynq-z2    bitstream artifact in bitstreams/ (needs Vivado 2022.2/2024.2)"
	@echo "make deploy MODEL=tryon BOARD=pynq-z2       dist/<model>-<board>.tar.gz for the board (DEPLOY_ARGS=--cpu-only without a bitstream)"

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch==2.13.0 (pinned in requirements.txt) takes the local CPU wheel, not a CUDA build.
	$(PIP) install --quiet -r requirements.txt
	# finn-plus pins brevitas==0.13.0 (and so setuptools<70), which cannot live with torch 2.13:
	# its dependencies are in requirements.txt with brevitas 0.13.4, and it goes in without them.
	$(PIP) install --quiet --no-deps finn-plus==$(FINN_PLUS_VERSION)
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# A board-like Python environment (numpy 1.26 as on PYNQ images, no torch, no FINN): the tests run
# the deploy package's runtime in it.
$(BOARD_STAMP): Makefile
	test -x $(BOARD_VENV)/bin/python || $(PYTHON) -m venv $(BOARD_VENV)
	$(BOARD_VENV)/bin/pip install --quiet numpy==1.26.4 onnxruntime==1.20.1
	touch $(BOARD_STAMP)

install: $(STAMP) $(BOARD_STAMP)

demo: $(STAMP)
	$(VENV)/bin/fpga-gan demo

# SERVE_ARGS: more `fpga-gan serve` options, e.g. SERVE_ARGS="--port 8080 --backend sim".
SERVE_ARGS ?=
serve: $(STAMP)
	$(VENV)/bin/fpga-gan serve $(SERVE_ARGS)

test: $(STAMP) $(BOARD_STAMP)
	bash tools/ensure_browser.sh
	$(PY) -m pytest -q -m "not slow" --durations=25 $(PYTEST_ARGS)

# everything, the slow tests too (the Verilator simulations of every new block and reference generator)
test-all: $(STAMP) $(BOARD_STAMP)
	bash tools/ensure_browser.sh
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The reference generators (tests/reference_generators.py: plain Brevitas, written apart from the
# package) are exported as a user would, then benchmarked on kv260 beside the zoo's cases.
# BENCH_ARGS: more `fpga-gan bench` options, e.g. BENCH_ARGS="--case my_gen.qonnx.onnx@kv260".
REFERENCE_DIR := build/reference
REFERENCE_BOARD := kv260
REFERENCE_NAMES = $(shell $(PY) -m tests.reference_generators --names)
REFERENCE_CASES = $(foreach name,$(REFERENCE_NAMES),--case $(REFERENCE_DIR)/$(name).qonnx.onnx@$(REFERENCE_BOARD))
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m tests.reference_generators --out $(REFERENCE_DIR)
	$(FG) bench --out build/bench $(REFERENCE_CASES) $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m fpga_gan.ops.lint

bench-cpu: $(STAMP)
	$(PY) benchmarks/cpu_inference.py

WEIGHTS_DATA := build/data/synth-16k
FG := $(VENV)/bin/fpga-gan
TRAIN := build/train
# The shipped try-on W4A4 is QAT fine-tuned from the float twin at step $(QAT_INIT_STEPS); the
# float run then resumes (exactly) to its final step count. See fpga_gan/zoo/README.md.
weights: $(STAMP)
	test -d $(WEIGHTS_DATA) || $(FG) data make --out $(WEIGHTS_DATA) --n 16000 --seed 0 --size 64x48
	$(FG) train tryon --data $(WEIGHTS_DATA) --out $(TRAIN)/tryon_float --float --steps $(QAT_INIT_STEPS) --threads 1
	cp $(TRAIN)/tryon_float/generator.pt $(TRAIN)/tryon_float_5k.pt
	$(FG) train tryon --data $(WEIGHTS_DATA) --out $(TRAIN)/tryon_float --float --steps $(TRYON_FLOAT_STEPS) \
		--lr-decay-from $(QAT_INIT_STEPS) --threads 1 --resume & \
	$(FG) train tryon --data $(WEIGHTS_DATA) --out $(TRAIN)/tryon_w4a4 --steps $(TRYON_QAT_STEPS) --learned-act-scale \
		--lr-decay-from $(TRYON_QAT_DECAY_FROM) \
		--init-from $(TRAIN)/tryon_float_5k.pt --threads 1 & \
	$(FG) train dcgan --out $(TRAIN)/dcgan_float $(DCGAN_ARGS) --steps 1500 --float && \
	$(FG) train dcgan --out $(TRAIN)/dcgan_w4a4 $(DCGAN_ARGS) --steps 1000 --learned-act-scale \
		--init-from $(TRAIN)/dcgan_float/generator.pt & \
	wait
	# SSIM fine-tuning of both try-on models, three rounds each (see fpga_gan/zoo/README.md)
	$(MAKE) tryon-ssim-rounds KIND=w4a4 FT_FLAGS=--learned-act-scale & \
	$(MAKE) tryon-ssim-rounds KIND=float FT_FLAGS=--float & \
	wait
	$(PY) tools/ship_weights.py --data $(WEIGHTS_DATA) --runs $(TRAIN)
	$(MAKE) weights-studio

# The design studio (fpga_gan/zoo/STUDIO.md): garment editor (float twin, then W4A4 by QAT from it),
# design generator (likewise) and the attribute classifier that judges both, one core each.
EDIT_DATA := build/data/edits-20k
EDITOR := $(FG) train editor --data $(EDIT_DATA) --lr 0.0003 --ssim-weight 20 --threads 1
weights-studio: $(STAMP)
	test -d $(EDIT_DATA) || $(FG) data make-edits --out $(EDIT_DATA) --n 20000 --seed 0 --size 64x64
	$(EDITOR) --out $(TRAIN)/editor_float --float --steps 3500 --lr-decay-from 3500 && \
	$(EDITOR) --out $(TRAIN)/editor_w4a4 --learned-act-scale --steps 5000 --lr-decay-from 2500 \
		--init-from $(TRAIN)/editor_float/generator.pt & \
	$(FG) train attributes --out $(TRAIN)/attributes --threads 1 && \
	$(FG) train designer --out $(TRAIN)/designer_float --float --steps 6000 --threads 1 && \
	$(FG) train designer --out $(TRAIN)/designer_w4a4 --learned-act-scale --steps 3000 --lr 0.0001 --threads 1 \
		--init-from $(TRAIN)/designer_float/generator.pt & \
	wait
	$(PY) tools/ship_studio.py --data $(EDIT_DATA) --runs $(TRAIN)

KIND ?= w4a4
FT_FLAGS ?=
FT := $(FG) train tryon --data $(WEIGHTS_DATA) --lr 1e-4 --lr-decay-from 0 --threads 1 $(FT_FLAGS)
tryon-ssim-rounds: $(STAMP)
	$(FT) --out $(TRAIN)/ft/$(KIND)_ssim30 --steps 3000 --init-from $(TRAIN)/tryon_$(KIND)/generator.pt \
		--ssim-weight 30 --adv-weight 0.5
	$(FT) --out $(TRAIN)/ft/$(KIND)_ssim100 --steps 4000 --init-from $(TRAIN)/ft/$(KIND)_ssim30/generator.pt \
		--ssim-weight 100 --adv-weight 0.2
	$(FT) --out $(TRAIN)/ft/$(KIND)_ssim300 --steps 4000 --init-from $(TRAIN)/ft/$(KIND)_ssim100/generator.pt \
		--ssim-weight 300 --adv-weight 0.1

MODEL ?= tryon
BOARD ?= pynq-z2
SIM_FRAMES ?= 4
SIM_BUILD := build/$(MODEL)-$(BOARD)
# Compiling again is cheap: finished stages are reused, so this only re-runs what changed.
sim: $(STAMP)
	$(FG) compile $(MODEL) --board $(BOARD) --out $(SIM_BUILD)
	$(FG) sim $(SIM_BUILD) --frames $(SIM_FRAMES)

# FOLDING=file.json: the folding of `fpga-gan compile --folding`, carried into the FINN build
FOLDING ?=
FOLDING_ARG := $(if $(FOLDING),--folding $(FOLDING),)
finn-build: $(STAMP)
	$(FG) finn-build $(MODEL) --board $(BOARD) $(FOLDING_ARG)

# Everything Vivado-free first (compile, RTL, FIFO sizing, FINN build dir); then FINN + Vivado.
bitstream: $(STAMP)
	$(FG) bitstream $(MODEL) --board $(BOARD) $(FOLDING_ARG)

DEPLOY_ARGS ?=
deploy: $(STAMP)
	$(FG) deploy $(MODEL) --board $(BOARD) $(DEPLOY_ARGS)

clean:
	rm -rf build dist *.egg-info
