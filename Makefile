# bertlab: `make train` runs the main job, `make test` the test suite. Both create the venv if missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: help install lint format train test test-fast bench report reproduce-crf reproduce-triples reproduce-albert reproduce-mrc reproduce-orthogonality reproduce-pretrain reproduce-generation bench-generate pretrain clean

help:  ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,cluster]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv (torch 2.13.0 CPU) and install bertlab editable with dev + cluster extras

train: $(STAMP)  ## main job: BERT+CRF word segmentation, People's Daily -> PKU test (ARGS="key=value ...")
	$(PY) -m bertlab.train experiment=cws_crf $(ARGS)

lint: $(STAMP)  ## ruff: lint + format check (configured in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)  ## ruff: apply the fixes and the formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint  ## lint, then the whole test suite, slow end-to-end tests included
	$(PY) -m pytest -q $(ARGS)

test-fast: $(STAMP)  ## tests without the slow end-to-end ones
	$(PY) -m pytest -q -m "not slow" $(ARGS)

bench: $(STAMP)  ## CRF benchmark against pytorch-crf
	$(PY) scripts/bench_crf.py $(ARGS)

report: $(STAMP)  ## markdown table + PNG of a multirun folder (DIR=multirun/<date>/<time> [ARGS="--metric val/f1"])
	@test -n "$(DIR)" || { echo "usage: make report DIR=<multirun folder>"; exit 2; }
	$(PY) -m bertlab.report $(DIR) $(ARGS)

reproduce-crf: $(STAMP)  ## the CRF post's layer-1 table (5 runs, <= 5 min each) -> logs/crf_layer1/<time>/crf_layer1.md
	$(PY) scripts/reproduce_crf.py $(ARGS)

reproduce-triples: $(STAMP)  ## triple extraction (post 5): scratch, overfit check (+ pretrained if present) -> logs/reproduce/triples/results.md
	$(PY) -m bertlab.train experiment=triples hydra.run.dir=logs/reproduce/triples/scratch $(ARGS)
	$(PY) -m bertlab.train experiment=triples_overfit hydra.run.dir=logs/reproduce/triples/overfit $(ARGS)
	if [ -d data/pretrained/bert_small ]; then $(PY) -m bertlab.train experiment=triples encoder=bert_small_pretrained hydra.run.dir=logs/reproduce/triples/pretrained $(ARGS); fi
	$(PY) -m bertlab.reporting.triples_table scratch=logs/reproduce/triples/scratch $$([ -d logs/reproduce/triples/pretrained ] && echo pretrained=logs/reproduce/triples/pretrained) overfit=logs/reproduce/triples/overfit --out logs/reproduce/triples/results.md

reproduce-albert: $(STAMP)  ## ALBERT shared vs unshared (post 2), 3 seeds, from data/pretrained/albert_small -> docs/albert_unshared.md
	$(PY) scripts/reproduce_albert.py --out docs/albert_unshared.md $(if $(ARGS),-- $(ARGS))

reproduce-orthogonality: $(STAMP)  ## orthogonality regularisers (post 4): none / SOM x2 weights / soft / biggan, 3 seeds -> docs/orthogonality.md
	$(PY) scripts/reproduce_orthogonality.py --out docs/orthogonality.md $(if $(ARGS),-- $(ARGS))

reproduce-pretrain: $(STAMP)  ## CWS with the small pretrained BERT vs from scratch, 5 min each, 3 seeds (issue 5) -> docs/pretrain_compare.md
	$(PY) scripts/reproduce_pretrain.py --out docs/pretrain_compare.md $(if $(ARGS),-- $(ARGS))

reproduce-mrc: $(STAMP)  ## MLM reading comprehension (post 6) on CMRC 2018: scratch, overfit (+ pretrained if present), decoding speed -> logs/reproduce/mrc/results.md
	$(PY) -m bertlab.train experiment=mrc_mlm hydra.run.dir=logs/reproduce/mrc/scratch $(ARGS)
	$(PY) -m bertlab.train experiment=mrc_mlm_overfit hydra.run.dir=logs/reproduce/mrc/overfit $(ARGS)
	if [ -d data/pretrained/bert_small ]; then $(PY) -m bertlab.train experiment=mrc_mlm encoder=bert_small_pretrained optimizer.lr=1e-4 hydra.run.dir=logs/reproduce/mrc/pretrained $(ARGS); fi
	$(PY) scripts/bench_mrc.py --ckpt $$(ls logs/reproduce/mrc/overfit/checkpoints/best-*.ckpt | head -1) --questions 100 --out logs/reproduce/mrc/bench.json
	$(PY) -m bertlab.reporting.mrc_table scratch=logs/reproduce/mrc/scratch $$([ -d logs/reproduce/mrc/pretrained ] && echo pretrained=logs/reproduce/mrc/pretrained) overfit=logs/reproduce/mrc/overfit --speed logs/reproduce/mrc/bench.json --out logs/reproduce/mrc/results.md

# conditional-LN generation (post 7): GEN_DIR (output folder), ARGS (overrides of every cond_gen training),
# CLS_ARGS (overrides of the sentiment classifier's training), CLS_DIR (a finished sentiment_cls run folder
# is reused as it is: its metrics.json and checkpoints/best-*.ckpt)
GEN_DIR ?= logs/reproduce/generation
CLS_DIR ?= $(GEN_DIR)/classifier
CLS_ARGS ?=
BEST_CKPT = $$(ls $(1)/checkpoints/best-*.ckpt 2>/dev/null | head -1)
reproduce-generation: $(STAMP)  ## conditional-LN generation (post 7): classifier, scratch, unconditional, overfit (+ pretrained), speed -> logs/reproduce/generation/results.md (GEN_DIR=...)
	if [ -f $(CLS_DIR)/metrics.json ]; then echo "classifier: reusing $(CLS_DIR)"; else $(PY) -m bertlab.train experiment=sentiment_cls hydra.run.dir=$(CLS_DIR) $(CLS_ARGS); fi
	cls=$(call BEST_CKPT,$(CLS_DIR)); test -f "$$cls" || { echo "no best checkpoint in $(CLS_DIR)/checkpoints" >&2; exit 1; }; \
	$(PY) -m bertlab.train experiment=cond_gen model.control_classifier_ckpt=$$cls hydra.run.dir=$(GEN_DIR)/scratch $(ARGS) && \
	$(PY) -m bertlab.train experiment=cond_gen_uncond model.control_classifier_ckpt=$$cls hydra.run.dir=$(GEN_DIR)/unconditional $(ARGS) && \
	if [ -d data/pretrained/bert_small ]; then $(PY) -m bertlab.train experiment=cond_gen encoder=bert_small_pretrained model.control_classifier_ckpt=$$cls hydra.run.dir=$(GEN_DIR)/pretrained $(ARGS); fi
	$(PY) -m bertlab.train experiment=cond_gen_overfit hydra.run.dir=$(GEN_DIR)/overfit $(ARGS)
	$(PY) -m bertlab.evaluate ckpt_path=$(call BEST_CKPT,$(GEN_DIR)/overfit) +data.overfit_texts=null hydra.run.dir=$(GEN_DIR)/overfit_heldout
	$(PY) scripts/bench_generate.py --ckpt $(call BEST_CKPT,$(GEN_DIR)/scratch) --json $(GEN_DIR)/bench.json
	$(PY) -m bertlab.reporting.generation_table scratch=$(GEN_DIR)/scratch $$([ -f $(GEN_DIR)/pretrained/metrics.json ] && echo pretrained=$(GEN_DIR)/pretrained) unconditional=$(GEN_DIR)/unconditional overfit=$(GEN_DIR)/overfit overfit_heldout=$(GEN_DIR)/overfit_heldout classifier=$(CLS_DIR) bench=$(GEN_DIR)/bench.json --out $(GEN_DIR)/results.md

bench-generate: $(STAMP)  ## generation tokens/s with vs without the key/value cache (CKPT=<cond_gen ckpt>, else a fresh small model)
	$(PY) scripts/bench_generate.py $(if $(CKPT),--ckpt $(CKPT)) $(ARGS)

pretrain: $(STAMP)  ## MLM-pretrain the shipped small BERT and ALBERT (<= 24 min each, 1 thread each, run side by side) -> data/pretrained/{bert_small,albert_small}
	$(PY) -m bertlab.train experiment=pretrain_mlm export_dir=data/pretrained/bert_small $(ARGS) & pid=$$!; \
	$(PY) -m bertlab.train experiment=pretrain_albert export_dir=data/pretrained/albert_small $(ARGS); rc=$$?; \
	wait $$pid && exit $$rc

clean:  ## remove logs and caches (not the venv)
	rm -rf logs .pytest_cache
