#!/usr/bin/env bash
# SST-2 dev accuracy: a fresh bert-tiny against a bert-tiny pretrained by `llmtrain pretrain`,
# each fine-tuned with several seeds and learning rates; llmtrain alone, on GLUE's SST-2 files.
#   pretrained: bert-tiny pretrained with MLM on all the English text at hand: SST-2's training
#       sentences with their labels dropped, tiny Shakespeare and the standard library's
#       docstrings (the built-in corpus); its WordPiece tokenizer is trained on the same text;
#   fresh: a fresh bert-tiny with that same tokenizer (the controlled comparison);
#   fresh-tasktok: a fresh bert-tiny with a tokenizer trained on SST-2's training text alone
#       (what `llmtrain finetune model=bert-tiny` does by default);
#   optionally a real pretrained checkpoint by local path (MINILM=DIR, e.g. all-MiniLM-L6-v2).
# Usage: [JOBS=N] [SEEDS="1 2 3"] [LRS="1e-4 3e-4"] [STARTS="fresh fresh-tasktok pretrained"]
#        [PRE_STEPS=4000] [FT_ARGS=overrides] [PY=python] scripts/sst2_quality.sh [SST2_DIR] [OUT_DIR]
# JOBS fine-tunes run at once (on a GPU, 12 fit easily; on 2 CPU cores OMP_NUM_THREADS=1 JOBS=2:
# about 40 minutes). A failed fine-tune is named on stderr and makes the exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
SST2=${1:-../shared/data/sst2}
SHAKESPEARE=${SHAKESPEARE:-../shared/data/tinyshakespeare/input.txt}
OUT=${2:-outputs/sst2-quality}
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-1}
SEEDS=${SEEDS:-"1 2 3"}
LRS=${LRS:-"1e-4 3e-4"}
STARTS=${STARTS:-"fresh fresh-tasktok pretrained"}
PRE_STEPS=${PRE_STEPS:-4000}
FT_ARGS=${FT_ARGS:-}  # more overrides for every fine-tune, e.g. trainer.precision=bf16
mkdir -p "$OUT"

# The corpus and the pretraining are built once; a later call (more seeds) reuses them.
if [ ! -f "$OUT/pretrain/summary.json" ]; then
# The training text as a corpus: SST-2's 67k training rows are phrases cut from 6.9k review
# sentences; each phrase inside a longer one is dropped, leaving each sentence once (one
# document each, a blank line between). On these 133 k words alone, MLM stays near the
# unigram level and the pretrained start fine-tunes worse than a fresh one (docs/benchmarks.md, earlier protocols).
$PY - "$SST2/train.tsv" "$OUT/sst2-sentences.txt" <<'PY'
import sys
rows = open(sys.argv[1], encoding="utf-8").read().splitlines()[1:]
kept, seen = [], ""
for phrase in sorted({r.split("\t")[0].strip() for r in rows}, key=lambda p: (-len(p), p)):
    if phrase not in seen:
        kept.append(phrase)
        seen += "\n" + phrase
open(sys.argv[2], "w", encoding="utf-8").write("\n\n".join(kept) + "\n")
PY
$PY -c 'import sys; from llmtrain.data.sources import stdlib_docstrings as d
open(sys.argv[1], "w", encoding="utf-8").write("\n\n".join(s.strip() for s in d()) + "\n")' \
    "$OUT/stdlib-docstrings.txt"
# One run on all cores (OMP_NUM_THREADS, which splits the cores among the fine-tunes, is dropped).
env -u OMP_NUM_THREADS $PY -m llmtrain pretrain objective=mlm model=bert-tiny data=text_files \
    "data.train_files=[$OUT/sst2-sentences.txt,$SHAKESPEARE,$OUT/stdlib-docstrings.txt]" \
    trainer.lr=1e-3 trainer.max_steps=$PRE_STEPS trainer.warmup_steps=$((PRE_STEPS / 10)) \
    trainer.eval_every=500 trainer.log_every=500 trainer.save_every=0 \
    "hydra.run.dir=$OUT/pretrain" > "$OUT/pretrain.log" 2>&1
fi

FT=(task=sst2 "task.data_dir=$SST2" trainer.epochs=3 trainer.warmup_steps=300
    trainer.eval_every=500 trainer.log_every=500 trainer.save_every=0)
jobs_list=()
declare -A START=(
  [fresh]="model=bert-tiny tokenizer.name_or_path=$OUT/pretrain/final"
  [fresh-tasktok]="model=bert-tiny"
  [pretrained]="model.from_run=$OUT/pretrain")
for seed in $SEEDS; do for lr in $LRS; do for start in $STARTS; do
  jobs_list+=("$start-s$seed-lr$lr ${START[$start]} trainer.seed=$seed trainer.lr=$lr")
done; done; done
[ -n "${MINILM:-}" ] && jobs_list+=("minilm model.name_or_path=$MINILM trainer.epochs=2 trainer.lr=5e-5 trainer.warmup_steps=200")
finetune() {  # NAME OVERRIDES...: one fine-tune, its output in NAME.log; a failure is told
  local name=$1; shift
  $PY -m llmtrain finetune "${FT[@]}" "$@" $FT_ARGS "hydra.run.dir=$OUT/$name" > "$OUT/$name.log" 2>&1 \
    || { echo "fine-tune $name failed: $(tail -n 1 "$OUT/$name.log")" >&2; return 1; }
}
pids=()
for job in "${jobs_list[@]}"; do
  set -- $job; name=$1; shift
  [ -f "$OUT/$name/summary.json" ] && continue  # finished in an earlier call
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
  finetune "$name" "$@" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done

$PY - "$OUT" <<'PY'
import json, statistics, sys
from collections import defaultdict
from pathlib import Path
out = Path(sys.argv[1])
pre = json.loads((out / "pretrain" / "summary.json").read_text())
print(f"pretraining: {pre['steps']} steps, {pre['tokens']:,} tokens, MLM eval loss {pre['loss']:.3f}")
groups = defaultdict(dict)  # (start, lr) -> {seed: best dev accuracy}
for summary in sorted(out.glob("*/summary.json")):
    name = summary.parent.name
    if name == "pretrain":
        continue
    acc = json.loads(summary.read_text())["best_accuracy"]
    start, _, rest = name.partition("-s")
    seed, _, lr = rest.partition("-lr")
    groups[(start, lr or "5e-5")][seed] = acc
    print(f"{name}: {100 * acc:.1f}")
print("| start | lr | seeds | dev accuracy mean ± sd |")
print("|---|---|---|---|")
for (start, lr), accs in sorted(groups.items()):
    values = list(accs.values())
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    print(f"| {start} | {lr} | {len(values)} | {100 * statistics.mean(values):.1f} ± {100 * sd:.1f} |")
# Seed for seed the two starts see the same batches in the same order, so their difference is
# less noisy than either mean.
for (start, lr), accs in sorted(groups.items()):
    fresh = groups.get(("fresh", lr), {})
    seeds = sorted(set(accs) & set(fresh))
    if start == "pretrained" and seeds:
        diffs = [100 * (accs[s] - fresh[s]) for s in seeds]
        print(f"lr {lr}, pretrained − fresh by seed: {' '.join(f'{d:+.1f}' for d in diffs)} "
              f"(mean {statistics.mean(diffs):+.2f}; higher in {sum(d > 0 for d in diffs)} of {len(diffs)})")
PY
exit $failed
