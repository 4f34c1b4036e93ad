"""llmtrain against transformers.Trainer and a bare PyTorch loop, side by side in one run.

    python scripts/bench.py                 # CPU workloads, 3 alternating repeats (make bench)
    python scripts/bench.py --repeats 1 --steps 10    # a quick look
    python scripts/bench.py --gpu           # adds bert-base MLM and gpt2-124m CLM in bf16
    python scripts/bench.py --gpu --compile --workloads clm-gpt2-124m   # torch.compile everywhere

Every measurement runs in its own child process (so peak memory is its own), systems alternate
within each repeat (A/B/C, A/B/C, …) so drift hits all alike, and the first steps of each are
warm-up, not measured. All systems get the same model (same initial weights), packed blocks or
sentences, batch size, precision and optimizer (AdamW, lr 1e-4, weight decay 0.01). Results go
to a JSON file (--out) and a markdown table on stdout.

Systems:
- llmtrain: the real `fit()` loop (its MLM head runs on masked positions only);
- trainer: `transformers.Trainer` at its best settings for the workload (its standard collator,
  the model's own loss; for SST-2 dynamic padding with group_by_length);
- bare: forward, backward, AdamW step and nothing else, on llmtrain's batches and loss: the
  floor our loop's overhead is measured against;
- trainer-pad128 (SST-2): every sentence padded to 128 tokens, as run_glue.py does by default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"
BATCH = 32
WARMUP = 5

WORKLOADS = {
    "mlm-bert-tiny": {"family": "bert", "objective": "mlm", "block": 128, "size": (128, 2, 2, 512)},
    "clm-gpt2-tiny": {"family": "gpt2", "objective": "clm", "block": 128, "size": (128, 2, 2, 512)},
    "sst2-minilm": {"family": "bert", "objective": "sst2", "size": (384, 6, 12, 1536)},
    "mlm-bert-base": {
        "family": "bert",
        "objective": "mlm",
        "block": 128,
        "size": (768, 12, 12, 3072),
        "gpu": True,
    },
    "clm-gpt2-124m": {
        "family": "gpt2",
        "objective": "clm",
        "block": 1024,
        "size": (768, 12, 12, 3072),
        "gpu": True,
    },
}
SYSTEMS = {
    "mlm": ["llmtrain", "trainer", "bare"],
    "clm": ["llmtrain", "trainer", "bare"],
    "sst2": ["llmtrain", "trainer", "trainer-pad128", "bare"],
}


# ---------------------------------------------------------------------------- the parent side
def data_prep_speed() -> dict:
    """Tokenise and pack the built-in corpus from an empty cache: MB of text per second."""
    code = (
        "import time, json, tempfile\n"
        "from pathlib import Path\n"
        "from llmtrain.console import quiet_libraries; quiet_libraries()\n"
        "from llmtrain.config import DataConfig, ModelConfig, TokenizerConfig\n"
        "from llmtrain.data import corpus\n"
        "from llmtrain.data.prepare import prepare\n"
        "import os\n"
        "cache = Path(os.environ.get('LLMTRAIN_CACHE', Path.home() / '.cache' / 'llmtrain'))\n"
        "data = DataConfig(cache_dir=str(cache))\n"
        "plan, _ = corpus.plan(data, TokenizerConfig(), ModelConfig(), 0)\n"
        "mb = plan.input_bytes / 1e6\n"
        "with tempfile.TemporaryDirectory() as fresh:\n"
        "    t = time.perf_counter()\n"
        "    prepare(plan.items, plan.settings, Path(fresh), os.cpu_count())\n"
        "    print(json.dumps({'mb': mb, 'seconds': time.perf_counter() - t}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["mb_per_s"] = result["mb"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--steps", type=int, default=20, help="measured steps per run (after warm-up)"
    )
    parser.add_argument("--precision", default="no", choices=["no", "bf16"])
    parser.add_argument("--gpu", action="store_true", help="also the GPU workloads (bf16)")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile in every system (Trainer's too)"
    )
    parser.add_argument("--workloads", nargs="*", help="a subset of: " + ", ".join(WORKLOADS))
    parser.add_argument("--systems", nargs="*", help="a subset of: llmtrain trainer bare …")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from bench_systems import child

        print("BENCH " + json.dumps(child(json.loads(args.child))), flush=True)
        return

    names = args.workloads or [
        w for w, spec in WORKLOADS.items() if args.gpu or not spec.get("gpu")
    ]
    results: dict[str, dict[str, list[dict]]] = {w: {} for w in names}
    started = time.time()
    for repeat in range(args.repeats):
        for w in names:
            precision = "bf16" if WORKLOADS[w].get("gpu") else args.precision
            for system in SYSTEMS[WORKLOADS[w]["objective"]]:
                if args.systems and system not in args.systems:
                    continue
                spec = {
                    "workload": w,
                    "system": system,
                    "steps": args.steps,
                    "precision": precision,
                    "gpu": args.gpu,
                    "compile": args.compile,
                }
                out = subprocess.run(
                    [sys.executable, __file__, "--child", json.dumps(spec)],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
                line = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")]
                if out.returncode != 0 or not line:
                    sys.exit(f"{w}/{system} failed:\n{out.stderr[-3000:]}")
                results[w].setdefault(system, []).append(json.loads(line[0][6:]))
                print(
                    f"[{time.time() - started:5.0f} s] repeat {repeat + 1} {w} {system}: "
                    f"{results[w][system][-1]['tokens_per_s']:,.0f} tokens/s",
                    file=sys.stderr,
                    flush=True,
                )
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "torch_threads": __import__("torch").get_num_threads(),
        "repeats": args.repeats,
        "measured_steps": args.steps,
        "batch": BATCH,
        "compile": args.compile,
        "workloads": summarise(results),
        "data_prep": data_prep_speed(),
        "seconds": time.time() - started,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))


def summarise(results: dict) -> dict:
    out = {}
    for w, systems in results.items():
        rows = {}
        for system, runs in systems.items():
            tps = [r["tokens_per_s"] for r in runs]
            rows[system] = {
                "tokens_per_s": statistics.median(tps),
                "min": min(tps),
                "max": max(tps),
                "examples_per_s": statistics.median(r["examples_per_s"] for r in runs),
                "step_ms": 1000 * statistics.median(r["step_s"] for r in runs),
                "peak_mb": max(r["peak_mb"] for r in runs),
                **({"mfu": statistics.median(r["mfu"] for r in runs)} if "mfu" in runs[0] else {}),
            }
        base = rows.get("trainer")
        for row in rows.values():
            row["vs_trainer"] = row["tokens_per_s"] / base["tokens_per_s"] if base else None
        if "bare" in rows:
            rows["llmtrain"]["overhead_vs_bare"] = (
                1 - rows["llmtrain"]["tokens_per_s"] / rows["bare"]["tokens_per_s"]
            )
        if "trainer-pad128" in rows:
            pad = rows["trainer-pad128"]["examples_per_s"]
            for row in rows.values():
                row["examples_vs_pad128"] = row["examples_per_s"] / pad
        out[w] = rows
    return out


def markdown(report: dict) -> str:
    lines = [
        f"machine: {report['machine']}; median of {report['repeats']} alternating repeats, "
        f"{report['measured_steps']} measured steps each, batch {report['batch']}",
        "",
        "| workload | system | tokens/s (min–max) | examples/s | step ms | peak MB | vs Trainer "
        "| note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w, rows in report["workloads"].items():
        for system, r in rows.items():
            note = []
            if "overhead_vs_bare" in r:
                note.append(f"loop overhead vs bare {100 * r['overhead_vs_bare']:+.1f} %")
            if "examples_vs_pad128" in r and system != "trainer-pad128":
                note.append(f"{r['examples_vs_pad128']:.2f}× pad-to-128")
            if "mfu" in r:
                note.append(f"MFU {100 * r['mfu']:.1f} %")
            vs = f"{r['vs_trainer']:.2f}×" if r["vs_trainer"] else ""
            lines.append(
                f"| {w} | {system} | {r['tokens_per_s']:,.0f} ({r['min']:,.0f}–{r['max']:,.0f}) | "
                f"{r['examples_per_s']:,.1f} | {r['step_ms']:,.0f} | {r['peak_mb']:,.0f} | {vs} "
                f"| {'; '.join(note)} |"
            )
    d = report["data_prep"]
    lines += [
        "",
        f"data preparation (tokenise + pack, {d['mb']:.2f} MB, empty cache): "
        f"{d['mb_per_s']:.2f} MB/s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
