# bertlab: `make train` runs the main job, `make test` the test suite. Both create the venv if missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: help install lint format train test test-fast bench report reproduce-crf reproduce-crf-claim reproduce-crf-mechanism reproduce-ner reproduce-ner-pd reproduce-triples reproduce-albert reproduce-mrc reproduce-orthogonality reproduce-pretrain reproduce-generation bench-generate pretrain clean clean-logs

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

lint: $(STAMP)  ## ruff (lint + format check) and mypy (types of src/bertlab), configured in pyproject.toml
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)  ## ruff: apply the fixes and the formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# pytest-xdist: TEST_WORKERS processes (loadgroup keeps the SLURM tests and the DDP tests on one worker each);
# TEST_WORKERS=0 runs everything in this process. --durations prints the slowest tests (CI logs show where time goes)
TEST_WORKERS ?= 2
PYTEST = $(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup) --durations=25

test: lint  ## lint, then the whole test suite, slow end-to-end tests included (TEST_WORKERS=2 processes)
	$(PYTEST) $(ARGS)

test-fast: $(STAMP)  ## tests without the slow end-to-end ones
	$(PYTEST) -m "not slow" $(ARGS)

bench: $(STAMP)  ## CRF benchmark against pytorch-crf
	$(PY) scripts/bench_crf.py $(ARGS)

report: $(STAMP)  ## report.md + PNGs of a multirun or Optuna sweep: per job, per seed group (mean ± std), curves (DIR=logs/<task>/multiruns/<time>_<pid> [ARGS="--metric val/f1"])
	@test -n "$(DIR)" || { echo "usage: make report DIR=logs/<task>/multiruns/<time>_<pid>"; exit 2; }
	$(PY) -m bertlab.report $(DIR) $(ARGS)

# reproduce one post: `python -m bertlab.reproduce <name>` (list: python -m bertlab.reproduce list).
# ARGS: Hydra overrides of every training; DRY=1 prints the commands only. Tables go under logs/;
# a table of docs/ is rewritten only by an explicit `python -m bertlab.reproduce <name> --out docs/<file>`
REPRODUCE = $(PY) -m bertlab.reproduce
DRY_FLAG = $(if $(DRY),--dry-run)
OVERRIDES = $(if $(ARGS),-- $(ARGS))

reproduce-crf: $(STAMP)  ## the CRF post's layer-1 table (5 runs, <= 5 min each) -> logs/crf_layer1/<time>/crf_layer1.md
	$(REPRODUCE) crf $(DRY_FLAG) $(OVERRIDES)

reproduce-crf-claim: $(STAMP)  ## the CRF post's main claim: lr 1e-5, pretrained, CRF x1/x100/x1000 -> logs/crf_lr_claim/<time>/crf_lr_claim.md
	$(REPRODUCE) crf_claim $(DRY_FLAG) $(OVERRIDES)

reproduce-crf-mechanism: $(STAMP)  ## CRF mechanism (post 1), layer-1 setting, CRF x1..x1000 (claim setting: python -m bertlab.reproduce crf_mechanism --setting claim)
	$(REPRODUCE) crf_mechanism $(DRY_FLAG) $(OVERRIDES)

reproduce-ner: $(STAMP)  ## Resume NER: CRF x1/x10/x100, softmax, MEMM, 3 seeds, <= 8 min a run -> <sweep folder>/ner.md (the docs' table: python -m bertlab.reproduce ner --out docs/ner.md)
	$(REPRODUCE) ner $(DRY_FLAG) $(OVERRIDES)

reproduce-ner-pd: $(STAMP)  ## People's Daily NER: the same arms -> <sweep folder>/ner_peoples_daily.md (--out docs/ner_peoples_daily.md)
	$(REPRODUCE) ner_pd $(DRY_FLAG) $(OVERRIDES)

reproduce-triples: $(STAMP)  ## triple extraction (post 5): scratch, overfit check (+ pretrained if present) -> logs/reproduce/triples/results.md
	$(REPRODUCE) triples $(DRY_FLAG) $(OVERRIDES)

reproduce-albert: $(STAMP)  ## ALBERT shared vs unshared (post 2): sentiment and triples, 3 seeds -> <sweep folder>/albert_{unshared,triples}.md (--out docs/...)
	$(REPRODUCE) albert $(DRY_FLAG) $(OVERRIDES)
	$(REPRODUCE) albert_triples $(DRY_FLAG) $(OVERRIDES)

reproduce-orthogonality: $(STAMP)  ## orthogonality regularisers (post 4): none / SOM x2 weights / soft / biggan, 3 seeds -> <sweep folder>/orthogonality.md (--out docs/orthogonality.md)
	$(REPRODUCE) orthogonality $(DRY_FLAG) $(OVERRIDES)

reproduce-pretrain: $(STAMP)  ## CWS with the small pretrained BERT vs from scratch, 5 min each, 3 seeds (issue 5) -> <sweep folder>/pretrain_compare.md (--out docs/pretrain_compare.md)
	$(REPRODUCE) pretrain $(DRY_FLAG) $(OVERRIDES)

reproduce-mrc: $(STAMP)  ## reading comprehension (post 6) on CMRC 2018: MLM vs UniLM seq2seq reader, memorisation, held out (pretrained if present), speed -> logs/reproduce/mrc/results.md
	$(REPRODUCE) mrc $(DRY_FLAG) $(OVERRIDES)

# conditional-LN generation (post 7): GEN_DIR (output folder), ARGS (overrides of every cond_gen training),
# CLS_ARGS (overrides of the sentiment classifier's training), CLS_DIR (a finished sentiment_cls run folder
# is reused as it is: its metrics.json and checkpoints/best-*.ckpt)
GEN_DIR ?= logs/reproduce/generation
CLS_DIR ?= $(GEN_DIR)/classifier
CLS_ARGS ?=
reproduce-generation: $(STAMP)  ## conditional-LN generation (post 7): classifier, scratch, unconditional, overfit (+ pretrained), speed -> logs/reproduce/generation/results.md (GEN_DIR=...)
	$(REPRODUCE) generation --dir $(GEN_DIR) --cls-dir $(CLS_DIR) --cls-args "$(CLS_ARGS)" $(DRY_FLAG) $(OVERRIDES)

bench-generate: $(STAMP)  ## generation tokens/s with vs without the key/value cache (CKPT=<cond_gen ckpt>, else a fresh small model)
	$(PY) scripts/bench_generate.py $(if $(CKPT),--ckpt $(CKPT)) $(ARGS)

pretrain: $(STAMP)  ## MLM-pretrain the shipped small BERT and ALBERT (<= 24 min each, 1 thread each, run side by side) -> data/pretrained/{bert_small,albert_small}
	$(PY) -m bertlab.train experiment=pretrain_mlm export_dir=data/pretrained/bert_small $(ARGS) & pid=$$!; \
	$(PY) -m bertlab.train experiment=pretrain_albert export_dir=data/pretrained/albert_small $(ARGS); rc=$$?; \
	wait $$pid && exit $$rc

clean:  ## remove caches only (.pytest_cache, .ruff_cache, .mypy_cache, __pycache__); never logs/ (runs, checkpoints, sweeps)
	rm -rf .pytest_cache .ruff_cache .mypy_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

# deleting results names what it deletes and needs CONFIRM=1
LOGS ?= logs
clean-logs:  ## DELETE every run, checkpoint and sweep under logs/ (LOGS=...): prints the folder; deletes only with CONFIRM=1
	@test -e "$(LOGS)" || { echo "$(LOGS): nothing to delete"; exit 0; }; \
	if [ "$(CONFIRM)" != 1 ]; then \
	  echo "would delete $$(cd "$(LOGS)" && pwd) ($$(du -sh "$(LOGS)" | cut -f1): every run, checkpoint and sweep in it)"; \
	  echo "run: make clean-logs CONFIRM=1"; exit 2; \
	fi; \
	echo "deleting $$(cd "$(LOGS)" && pwd) ($$(du -sh "$(LOGS)" | cut -f1))"; rm -rf "$(LOGS)"
