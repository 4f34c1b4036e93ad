#!/usr/bin/env bash
# GPU checks, one script for one lent machine (see docs/distributed.md):
# single-GPU bf16 training and exact-enough resume, DDP and FSDP (full and sharded checkpoints)
# under torchrun, and an FSDP fine-tune. The log goes to $OUT/checks.log (or ./gpu-check/).
# The GPU benchmark is separate: python scripts/bench.py --gpu.
#   scripts/gpu_check.sh [SST2_DIR]
set -u
OUT=${OUT:-gpu-check}; mkdir -p "$OUT"
SST2=${1:-../shared/data/sst2}
export LLMTRAIN_CACHE=${LLMTRAIN_CACHE:-/tmp/llmtrain-cache} PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
PY=${PY:-python3}
R=/tmp/gpu-runs; rm -rf $R
SMALL=(trainer.log_every=10 trainer.eval_every=20 trainer.eval_batches=4 trainer.precision=bf16
       trainer.warmup_steps=5)
step() { echo "=== $1"; shift; "$@" 2>&1 | grep -E "llmtrain|rror|resuming|^summary|^eval" | tail -n 8; echo "rc=${PIPESTATUS[0]}"; }
loss() { $PY -c "import json,sys; s=json.load(open('$1/summary.json')); print('$1', {k: s[k] for k in ('loss','steps','tokens_per_s') if k in s})"; }
evals() { $PY -c "import json; rows=[json.loads(l) for l in open('$1/metrics.jsonl')]; print('$1 eval', [(r['step'], round(r['loss'], 4)) for r in rows if r.get('split') == 'eval'])"; }
{
nvidia-smi -L; $PY -c "import torch, transformers, accelerate; print(torch.__version__, transformers.__version__, accelerate.__version__)"
step "single GPU, gpt2-tiny CLM bf16, 60 steps" $PY -m llmtrain pretrain objective=clm model=gpt2-tiny trainer.max_steps=60 trainer.save_every=30 "${SMALL[@]}" hydra.run.dir=$R/single
step "the same, stopped at 30 ..." $PY -m llmtrain pretrain objective=clm model=gpt2-tiny trainer.max_steps=30 trainer.save_every=30 "${SMALL[@]}" hydra.run.dir=$R/resumed
step "... and resumed to 60" $PY -m llmtrain pretrain objective=clm model=gpt2-tiny trainer.max_steps=60 trainer.save_every=30 "${SMALL[@]}" hydra.run.dir=$R/resumed
loss $R/single; loss $R/resumed
for strategy in ddp fsdp fsdp-sharded; do
  extra=(distributed=${strategy%-sharded}); [ $strategy = fsdp-sharded ] && extra+=(distributed.fsdp_state_dict=sharded)
  step "torchrun x1 $strategy, bert-tiny MLM bf16, 40 steps" torchrun --standalone --nproc_per_node 1 -m llmtrain pretrain model=bert-tiny "${extra[@]}" trainer.max_steps=40 trainer.save_every=20 "${SMALL[@]}" hydra.run.dir=$R/$strategy
  step "torchrun x1 $strategy resumed to 60" torchrun --standalone --nproc_per_node 1 -m llmtrain pretrain model=bert-tiny "${extra[@]}" trainer.max_steps=60 trainer.save_every=20 "${SMALL[@]}" hydra.run.dir=$R/$strategy
  ls $R/$strategy/checkpoints/*; loss $R/$strategy; evals $R/$strategy
  $PY -c "from transformers import AutoModelForMaskedLM as M; m=M.from_pretrained('$R/$strategy/final'); print('final/ loads, decoder tied:', m.cls.predictions.decoder.weight is m.bert.embeddings.word_embeddings.weight)"
done
step "plain launch with distributed=fsdp is refused" $PY -m llmtrain pretrain distributed=fsdp trainer.max_steps=2
step "torchrun x1 fsdp fine-tune, SST-2 subset" torchrun --standalone --nproc_per_node 1 -m llmtrain finetune task=sst2 task.data_dir=$SST2 model=bert-tiny distributed=fsdp trainer.epochs=1 trainer.eval_every=50 trainer.warmup_steps=10 trainer.precision=bf16 hydra.run.dir=$R/ft-fsdp
$PY -c "import json; s=json.load(open('$R/ft-fsdp/summary.json')); print('ft-fsdp', s['best_accuracy'], s['steps'])"
} > "$OUT/checks.log" 2>&1
cat "$OUT/checks.log"
