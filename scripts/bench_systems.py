"""The systems `scripts/bench.py` compares, each run in a child process it starts:
llmtrain's `fit()`, `transformers.Trainer`, and a bare PyTorch loop on llmtrain's batches."""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from bench import BATCH, SST2, WARMUP, WORKLOADS


def _setup(workload: dict, gpu: bool):
    """Tokenizer, training examples and a fresh model (seeded: the same weights every time)."""
    import datasets
    import torch

    from llmtrain.config import (
        DataConfig,
        Family,
        ModelConfig,
        ObjectiveName,
        TokenizerConfig,
    )
    from llmtrain.console import quiet_libraries
    from llmtrain.data import corpus
    from llmtrain.data.packing import PackedDataset
    from llmtrain.data.tokenizer import build_tokenizer
    from llmtrain.models import build_classifier, build_model
    from llmtrain.tasks.classification import ClassificationConfig, encode
    from llmtrain.tasks.glue import read_glue

    quiet_libraries()
    cache = Path(os.environ.get("LLMTRAIN_CACHE", Path.home() / ".cache" / "llmtrain"))
    family = Family(workload["family"])
    hidden, layers, heads, inner = workload["size"]
    model_cfg = ModelConfig(
        family=family,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=inner,
        max_position_embeddings=max(512, workload.get("block", 0)),
    )
    vocab = 50257 if hidden == 768 and family is Family.gpt2 else (30522 if hidden >= 384 else 8192)
    if workload["objective"] == "sst2":
        task = read_glue(ClassificationConfig(name="sst2", data_dir=str(SST2)), cache, None)
        texts = datasets.Dataset.from_dict({"text": list(task.splits["train"]["text_a"])})
        tokenizer = build_tokenizer(
            TokenizerConfig(vocab_size=vocab),
            family,
            texts,
            cache,
            512,
            fingerprint=f"sst2-train-{vocab}",
        )
        data = encode(task.splits["train"], tokenizer, 128)
        torch.manual_seed(0)
        model = build_classifier(model_cfg, tokenizer, task.labels)
    else:
        plan, tokenizer = tokens = TokenizerConfig(vocab_size=vocab)
        plan, tokenizer = corpus.plan(DataConfig(cache_dir=str(cache)), tokens, model_cfg, 0)
        corpus.run(plan, None)
        data = PackedDataset(corpus.splits(plan)["train"], workload["block"])
        torch.manual_seed(0)
        model = build_model(model_cfg, ObjectiveName(workload["objective"]), tokenizer)
    return tokenizer, data, model


def _trainer_cfg(steps: int, precision: str, compile: bool):
    from llmtrain.config import Precision, TrainerConfig

    return TrainerConfig(
        compile=compile,
        max_steps=steps,
        batch_size=BATCH,
        lr=1e-4,
        warmup_steps=1,
        weight_decay=0.01,
        log_every=WARMUP,
        eval_every=0,
        save_every=0,
        eval_batches=1,
        precision=Precision(precision),
        max_grad_norm=1.0,
    )


def _objective(workload, tokenizer, data):
    """llmtrain's objective for the workload, and the lengths its sampler groups by (SST-2)."""
    import torch

    from llmtrain.config import ObjectiveConfig, ObjectiveName
    from llmtrain.objectives import build_objective
    from llmtrain.tasks.classification import SequenceClassification

    if workload["objective"] == "sst2":
        lengths = torch.tensor([len(x) for x in data["input_ids"]])
        return SequenceClassification(tokenizer, ["accuracy"], regression=False), lengths
    return build_objective(
        ObjectiveConfig(name=ObjectiveName(workload["objective"])), tokenizer
    ), None


def _run_llmtrain(workload, tokenizer, data, model, steps, precision, compile):
    from llmtrain.console import Console
    from llmtrain.rundir import RunDir
    from llmtrain.train.distributed import make_accelerator
    from llmtrain.train.evaluator import Evaluator
    from llmtrain.train.job import Job, total_steps
    from llmtrain.train.loop import fit

    cfg = _trainer_cfg(WARMUP + steps, precision, compile)
    objective, lengths = _objective(workload, tokenizer, data)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp))
        accelerator = make_accelerator(cfg)
        steps = total_steps(cfg, len(data), accelerator.num_processes)
        job = Job(cfg, accelerator, run, Console(enabled=False), {}, steps)
        evaluator = Evaluator({"validation": _small(data)}, objective, cfg, accelerator)
        fit(job, model, objective, data, evaluator, lengths)
        rows = [json.loads(x) for x in run.metrics.read_text().splitlines() if '"train"' in x]
    times, tokens, last = [], [], 0
    for row in rows:  # one row per WARMUP steps; the first window is the warm-up
        window_tokens = row["tokens"] - last
        last = row["tokens"]
        times.append(window_tokens / row["tokens_per_s"] / WARMUP)
        tokens.append(window_tokens / WARMUP)
    return times[1:], tokens[1:]


def _small(data):
    import torch

    return torch.utils.data.Subset(data, range(BATCH))


def _run_trainer(workload, tokenizer, data, model, steps, precision, compile, pad_to=None):
    import torch
    from transformers import (
        DataCollatorForLanguageModeling,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    objective = workload["objective"]
    if objective == "sst2":
        collator = DataCollatorWithPadding(
            tokenizer, padding="max_length" if pad_to else True, max_length=pad_to
        )
        train = data.rename_column("label", "labels").remove_columns(["index"])
    else:
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=objective == "mlm")
        train = data
    marks: list[float] = []
    sizes: list[int] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    class CountingCollator:
        def __call__(self, examples):
            batch = collator(examples)
            mask = batch.get("attention_mask")
            sizes.append(
                int(mask.sum())
                if mask is not None and objective == "sst2"
                else batch["input_ids"].numel()
            )
            return batch

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=BATCH,
            max_steps=WARMUP + steps,
            learning_rate=1e-4,
            weight_decay=0.01,
            warmup_steps=1,
            optim="adamw_torch_fused" if torch.cuda.is_available() else "adamw_torch",
            use_cpu=not torch.cuda.is_available(),
            bf16=precision == "bf16",
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length"
            if objective == "sst2" and not pad_to
            else "random",
            remove_unused_columns=False,
            seed=0,
            max_grad_norm=1.0,
            torch_compile=compile,
        )
        Trainer(
            model=model,
            args=args,
            train_dataset=train,
            data_collator=CountingCollator(),
            callbacks=[Clock()],
        ).train()
    times = [b - a for a, b in zip(marks, marks[1:], strict=False)][WARMUP - 1 :]
    return times, sizes[WARMUP : WARMUP + len(times)]


def _run_bare(workload, tokenizer, data, model, steps, precision, compile):
    import torch

    from llmtrain.train.sampler import make_loader

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    objective, lengths = _objective(workload, tokenizer, data)
    step_loss = torch.compile(objective.loss) if compile else objective.loss
    loader = make_loader(
        data,
        objective.collate,
        batch_size=BATCH,
        seed=42,
        epoch=0,
        rank=0,
        world=1,
        shuffle=True,
        lengths=lengths,
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, weight_decay=0.01, fused=device == "cuda" or None
    )
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")
    times, tokens = [], []
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epochs, as the others
    for i in range(WARMUP + steps):
        t0 = time.perf_counter()
        batch = {k: v.to(device) for k, v in next(batches).items()}
        with autocast:
            loss_sum, n = step_loss(model, batch)
        (loss_sum / n).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
            mask = batch.get("attention_mask")
            tokens.append(int(mask.sum()) if mask is not None else batch["input_ids"].numel())
    return times, tokens


def child(spec: dict) -> dict:
    import torch

    workload = WORKLOADS[spec["workload"]]
    tokenizer, data, model = _setup(workload, spec["gpu"])
    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    runner = {
        "llmtrain": _run_llmtrain,
        "trainer": _run_trainer,
        "bare": _run_bare,
        "trainer-pad128": lambda *a: _run_trainer(*a, pad_to=128),
    }[spec["system"]]
    times, tokens = runner(
        workload, tokenizer, data, model, spec["steps"], spec["precision"], spec["compile"]
    )
    step = statistics.median(times)
    result = {
        "step_s": step,
        "tokens_per_s": sum(tokens) / sum(times),
        "examples_per_s": BATCH / step,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters": params,
    }
    if torch.cuda.is_available():
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["mfu"] = _mfu(workload, model, result["tokens_per_s"])
    return result


def _mfu(workload: dict, model, tokens_per_s: float) -> float:
    """Model FLOPs utilisation: (6·N + 12·L·H·T) FLOPs per token against the device's bf16 peak."""
    import torch

    hidden, layers, _, _ = workload["size"]
    n = sum(
        p.numel() for n_, p in model.named_parameters() if "wpe" not in n_ and "position" not in n_
    )
    per_token = 6 * n + 12 * layers * hidden * workload.get("block", 128)
    name = torch.cuda.get_device_name()
    peak = (
        989e12 if "H100" in name or "H200" in name else float(os.environ.get("PEAK_FLOPS", "nan"))
    )
    return per_token * tokens_per_s / peak
