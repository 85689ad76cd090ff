"""Sweep summary: a table of every job's overrides, its monitored metric and its status (with a
failed job's one-line reason), rewritten as each job ends (so a sweep that stops early still
leaves one) and at the end of the sweep.

Registered as a Hydra callback in conf/hydra/default.yaml; works with any sweeper and launcher
because it reads what each job left on disk (`.hydra/overrides.yaml`, `result.json`).
"""

import csv
import json
import os
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def collect(sweep_dir: Path) -> list[dict]:
    rows = []
    for overrides_file in sorted(sweep_dir.glob("*/.hydra/overrides.yaml"), key=lambda p: _job_num(p.parents[1].name)):
        job_dir = overrides_file.parents[1]
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        result_file = job_dir / "result.json"
        if result_file.is_file():
            result = json.loads(result_file.read_text())
            if result.get("error"):
                status = f"failed: {result['error']}"
            else:
                status = "ok" if result.get("value") is not None else "no metric"
        else:
            result, status = {}, "running (or killed)"
        rows.append({
            "job": job_dir.name,
            "overrides": " ".join(overrides),
            "monitor": result.get("monitor", ""),
            "value": result.get("value"),
            "status": status,
            "best_checkpoint": result.get("best_checkpoint") or "",
        })
    return rows


def _job_num(name: str) -> int:
    head = name.split("_", 1)[0]
    return int(head) if head.isdigit() else 1 << 30


def write_summary(sweep_dir: Path) -> list[dict]:
    rows = collect(sweep_dir)
    if not rows:
        return rows
    fields = list(rows[0])
    tmp = sweep_dir / f".summary.csv.{os.getpid()}"
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, sweep_dir / "summary.csv")  # parallel jobs may write at once: replace whole files
    md = ["| job | overrides | " + (rows[0]["monitor"] or "metric") + " | status |", "|---|---|---|---|"]
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        md.append(f"| {r['job']} | `{r['overrides']}` | {value} | {r['status'].replace('|', '/')} |")
    tmp = sweep_dir / f".summary.md.{os.getpid()}"
    tmp.write_text("\n".join(md) + "\n")
    os.replace(tmp, sweep_dir / "summary.md")
    return rows


def print_summary(sweep_dir: Path) -> None:
    rows = write_summary(sweep_dir)
    if rows:
        print(f"sweep summary ({len(rows)} jobs): {sweep_dir / 'summary.md'}")
        print((sweep_dir / "summary.md").read_text(), flush=True)


current_sweep: Path | None = None  # for the entry point, to print the summary when a sweep fails
empty = False  # the last sweep had no jobs at all
new_study: Path | None = None  # an Optuna SQLite file this sweep is about to create


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global current_sweep, new_study
        current_sweep = Path(config.hydra.sweep.dir)
        storage = str(config.hydra.sweeper.get("storage") or "")
        study = Path(storage.removeprefix("sqlite:///")) if storage.startswith("sqlite:///") else None
        new_study = study if study is not None and not study.exists() else None

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.hydra.mode is not None and str(config.hydra.mode) == "RunMode.MULTIRUN":
            write_summary(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global current_sweep
        global empty
        sweep_dir, current_sweep = Path(config.hydra.sweep.dir), None
        empty = not any(sweep_dir.glob("*/.hydra"))  # (the entry point says so: Hydra ignores a callback's error)
        print_summary(sweep_dir)
