"""Sweeps (-m): the first job checked before anything is made, the sweep's own folder, and a
summary of every job's overrides, monitored metric and status (a failed job's one-line reason),
rewritten as each job ends (a Hydra callback: it reads what each job left on disk, so it works
with any sweeper and launcher) and printed when the sweep ends."""

import csv
import difflib
import enum
import hashlib
import json
import math
import os
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from seqlab.errors import Interrupted, SeqlabError
from seqlab.run import rundir


def job_name(override_dirname: str, limit: int = 100) -> str:
    """A sweep job's folder name from its overrides: floats shortened to 4 significant digits
    (an Optuna draw like 0.23560757511413075 reads 0.2356), and a long list cut with a hash of
    the whole, so a folder name never passes the file system's 255-byte limit."""
    name = re.sub(r"(?<==)[-+]?\d*\.\d+(?:e[-+]?\d+)?(?=,|$)", lambda m: f"{float(m.group()):.4g}", override_dirname)
    name = name.replace("/", "-")  # a config group choice (model/optimizer=sgd) is not a subfolder
    if len(name) > limit:
        name = name[:limit].rstrip(",") + "~" + hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
    return name


def direction(monitor_mode: str) -> str:
    return "maximize" if monitor_mode == "max" else "minimize"


OmegaConf.register_new_resolver("seqlab.job_name", job_name, replace=True)
OmegaConf.register_new_resolver("seqlab.direction", direction, replace=True)


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
        rows.append(
            {
                "job": job_dir.name,
                "overrides": " ".join(overrides),
                "monitor": result.get("monitor", ""),
                "value": result.get("value"),
                "status": status,
                "best_checkpoint": result.get("best_checkpoint") or "",
            }
        )
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


def print_summary(sweep_dir: Path, planned: int | None = None, ended: str | None = None) -> None:
    """`planned`: how many jobs the sweep has (a grid's, or n_trials), so a stopped sweep says how many never ran.
    `ended`: the sweep failed or stopped, and what of its folder goes unless a job kept a checkpoint."""
    rows = write_summary(sweep_dir)
    if rows:
        missing = f" of {planned}; {planned - len(rows)} did not run" if planned and planned > len(rows) else ""
        gone = ended and not rundir.kept(sweep_dir)
        where = f"nothing was kept, so {ended} is removed" if gone else sweep_dir / "summary.md"
        print(f"sweep summary ({len(rows)} jobs{missing}): {where}")
        print((sweep_dir / "summary.md").read_text(), flush=True)


class SweepSummary(Callback):
    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        write_summary(Path(config.hydra.sweep.dir))


def keep_search_space(ctx, storage: str, name: str, space: dict, file, direction) -> int:
    """An Optuna study goes on only in the search space and direction it began with (Optuna
    cannot change a choice's values mid-study); the space is kept among the study's user
    attributes. Returns how many trials the study holds."""
    import optuna

    def load():
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # (no such study yet)
            return None

    if file and file.is_file() and file.stat().st_size and not file.read_bytes()[:16] == b"SQLite format 3\0":
        raise SeqlabError(
            f"{file} is not an Optuna study database; move it away, or pass "
            f"hydra.sweeper.storage=sqlite:///<another file>"
        )
    study = load()
    was = study.direction.name.lower() if study and len(study.directions) == 1 else direction
    if isinstance(direction, str) and was != direction:
        raise SeqlabError(
            f"study {name!r} in {file or storage} began to {was} and this search would {direction}; pass "
            f"hydra.sweeper.study_name={name}_2 to start a new study"
        )
    done = len(study.trials) if study else 0
    before = study.user_attrs.get("seqlab_search_space") if study else None
    if before is not None and before != space:
        changed = ", ".join(sorted(k for k in before.keys() | space.keys() if before.get(k) != space.get(k)))
        raise SeqlabError(
            f"the search space changed ({changed}) since study {name!r} in {file or storage} began; pass "
            f"hydra.sweeper.study_name={name}_2 to start a new study, or put the space back to continue this one"
        )
    if before is None:  # (a new study, made by the sweeper: recorded once the sweep ends)
        ctx.stack.callback(lambda: (s := load()) and s.set_user_attr("seqlab_search_space", space))
    return done


# ---- -m: a sweep, started by seqlab-train ---------------------------------------------------------------
def run_sweep(line, first, run, ctx):
    """Check the first job as a run is checked, make the sweep's folder (or take the one given,
    which must hold no sweep), let Hydra's sweeper and launcher call `run` once per job, and print
    the summary. A sweep whose every job failed before a checkpoint leaves no folder, no new study."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from seqlab.run import cli
    from seqlab.run.explain import explain, quote
    from seqlab.run.schema import show
    from seqlab.train import check, set_output_dir

    hc = HydraConfig.get()
    check_sweep(line.overrides, hc, first)
    folder = Path(str(hc.sweep.dir)).expanduser().absolute()
    set_output_dir(folder / "0")
    check(first)
    for name, space in (OmegaConf.select(hc, "sweeper.params") or {}).items():  # (a typo would fail each trial)
        if not isinstance(space, str):
            raise SeqlabError(
                f"hparams_search={hc.runtime.choices.get('hparams_search')} gives {name} a "
                f"{type(space).__name__.removesuffix('Config').lower()}; write a search range: "
                f"choice(a, b, …), range(start, stop) or interval(low, high)"
            )
        check_range(f"{name}: {space}", OverridesParser.create().parse_override(f"{name}={space}"))
        parent, _, leaf = name.lstrip("+").rpartition(".")
        node = OmegaConf.select(first, parent) if parent else first
        if "/" not in name and not name.startswith("+") and not (OmegaConf.is_dict(node) and leaf in node):
            close = difflib.get_close_matches(leaf, list(node) if OmegaConf.is_dict(node) else [], n=1)
            hint = f"did you mean {parent + '.' if parent else ''}{close[0]}?" if close else "fix the key in the file"
            raise SeqlabError(
                f"hparams_search={hc.runtime.choices.get('hparams_search')} searches {name}, which is not a key "
                f"of this config; {hint}"
            )
    wanted = OmegaConf.select(hc, "sweeper.direction")
    wanted = wanted.name if isinstance(wanted, enum.Enum) else wanted  # (hydra/sweeper=optuna's own default)
    if wanted is not None and not isinstance(wanted, str):  # (a run returns one metric: every trial would fail)
        raise SeqlabError(
            f"hydra.sweeper.direction={show(OmegaConf.to_container(wanted))} asks for several objectives, but a run "
            f"returns one metric (model.monitor); drop hydra.sweeper.direction"
        )
    if isinstance(wanted, str) and wanted != direction(first.model.monitor_mode):
        raise SeqlabError(
            f"hydra.sweeper.direction={wanted} but model.monitor_mode={first.model.monitor_mode} "
            f"({first.model.monitor}); drop hydra.sweeper.direction: the search follows model.monitor_mode"
        )
    first_hydra = HydraConfig.instance().cfg
    jobs, planned = grid_jobs(line.overrides)
    planned = OmegaConf.select(hc, "sweeper.n_trials", default=planned)
    for other in jobs[1:]:
        cfg = cli.compose("train", other)
        set_output_dir(folder / "0")
        check(cfg)
    HydraConfig.instance().set_config(first_hydra)
    named = any(o.startswith("hydra.sweep.dir=") for o in cli.given(hc, "hydra"))
    if named and rundir.holds_run(folder):
        raise SeqlabError(f"hydra.sweep.dir={hc.sweep.dir} holds a run; pass a new folder")
    if named and any(folder.glob("*/.hydra")):
        raise SeqlabError(f"hydra.sweep.dir={hc.sweep.dir} already holds a sweep; pass a new folder")
    # What a failed sweep that kept no checkpoint removes: a folder it made, or what it wrote in one given empty.
    gone = f"what it wrote in {folder}" if named and folder.is_dir() else "its folder"
    if named:
        folder = rundir.claim_given(ctx.stack, str(hc.sweep.dir), "hydra.sweep.dir")
    else:
        folder = rundir.make_folder(ctx.stack, folder, "hydra.sweep.dir")
    storage = str(OmegaConf.select(hc, "sweeper.storage", default="") or "")
    study = Path(storage.removeprefix("sqlite:///")).absolute() if storage.startswith("sqlite:///") else None
    if study and not os.access(study.parent, os.W_OK):  # (else SQLAlchemy's error, deep inside Optuna)
        raise SeqlabError(
            f"hydra.sweeper.storage={storage}: the folder {study.parent} is not there or cannot be "
            f"written; pass e.g. hydra.sweeper.storage=sqlite:///{folder}/optuna.db"
        )
    if study and not study.exists():  # a study this sweep starts goes with a sweep that kept nothing
        ctx.stack.push(lambda kind, *_: kind and not rundir.kept(folder) and study.unlink(missing_ok=True))
    if storage:
        space = OmegaConf.to_container(hc.sweeper.params)
        done = keep_search_space(ctx, storage, str(hc.sweeper.study_name), space, study, hc.sweeper.direction)
        seed = OmegaConf.select(hc, "sweeper.sampler.seed")
        if done and isinstance(seed, int):  # (the same seed again would propose the trials it began with)
            line.overrides = [*line.overrides, f"hydra.sweeper.sampler.seed={seed + done}"]
    line.overrides = [*line.overrides, f"hydra.sweep.dir={quote(str(folder))}"]
    exclude = "hydra.job.config.override_dirname.exclude_keys"
    if not any(o.lstrip("+").startswith(exclude + "=") for o in line.overrides):  # (job folders: what differs)
        parsed = OverridesParser.create().parse_overrides([o for o in line.overrides if not o.startswith("hydra.")])
        swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
        fixed = [o.key_or_group for o in parsed if not o.is_sweep_override()]
        keys = [k for k in hc.job.config.override_dirname.exclude_keys if k not in swept] + fixed
        line.overrides.append(f"{exclude}=[{','.join(dict.fromkeys(keys))}]")

    def job(cfg):
        cli.quiet_libraries()  # (hydra/launcher=parallel: a worker process of its own)
        with ExitStack() as stack:
            job_ctx = cli.Context(stack, ctx.command, sweep_job=True, overrides=cli.recorded(HydraConfig.get()))
            try:
                return run(cfg, job_ctx)
            except BaseException as e:  # the summary's reason for this job; the sweeper decides what next
                stopped = isinstance(e, Interrupted)
                reason = (
                    (e.message or str(Interrupted(e.signum))) if stopped else explain(e, job_ctx.overrides, job_ctx)
                )
                record = Path(HydraConfig.get().runtime.output_dir) / "result.json"
                record.write_text(json.dumps({"error": reason or f"{type(e).__name__}: {e}"}))
                if stopped:
                    fail_trial(HydraConfig.get())
                raise

    try:
        result = cli.hydra_main(line, job)
    except Exception as e:
        print_summary(folder, planned, ended=gone)
        rows = collect(folder)
        failed = [r["status"][len("failed: ") :] for r in rows if r["status"].startswith("failed: ")]
        if explain(e, line.overrides, ctx) is None and rows and not any(r["status"] == "ok" for r in rows):
            why = f"the first failed with '{failed[0]}'" if failed else f"none measured {rows[0]['monitor']} (they end "
            why += "" if failed else "before their first validation: see trainer.check_val_every_n_epoch)"
            raise SeqlabError(f"no job of the sweep finished: {why}; the sweep summary lists each") from e
        raise
    except BaseException as e:
        print_summary(folder, planned, ended=gone)
        if isinstance(e, Interrupted) and e.plain and rundir.kept(folder):
            raise Interrupted(  # (jobs in other processes: a parallel launcher's)
                e.signum,
                f"{e.message}; the jobs that had begun keep their checkpoints: continue one with "
                f"{ctx.command} resume=<its folder> (the summary above lists them)",
                saved=True,
            ) from None
        raise
    if not collect(folder):
        raise SeqlabError("the sweep has no jobs (a sweep value such as range(4,2) is empty); check the -m values")
    print_summary(folder)
    return result


def fail_trial(hc) -> None:
    """The Optuna trial of a job a signal stopped, failed in its study (else it stays RUNNING for
    good): the running trial whose parameters are the job's overrides (as the sweeper writes them)."""
    storage = OmegaConf.select(hc, "sweeper.storage")
    if not storage or "params" not in hc.sweeper:
        return
    import optuna

    from seqlab.run.cli import given

    study, mine = optuna.load_study(study_name=str(hc.sweeper.study_name), storage=str(storage)), set(given(hc))
    for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
        if {f"{k}={v}" for k, v in t.params.items()} <= mine:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            return


def grid_jobs(overrides: list[str]) -> tuple[list[list[str]], int]:
    """A sweep's jobs as far as they are known before it runs: first the first job (each list of
    values at its first, a search range left to the config's own value), then each other value of
    each swept key with the first job's values elsewhere; all are checked before anything is made.
    And the size of the grid."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob

    from seqlab.run import cli

    choices = []  # per override: what a job may say for it (none for a search range)
    for text, o in zip(overrides, OverridesParser.create().parse_overrides(overrides), strict=True):
        check_range(text, o)
        if not o.is_sweep_override():
            choices.append([text])
        elif o.is_discrete_sweep():
            try:
                if isinstance(o.value(), Glob):  # (the options of a config group: ours and the user's folders)
                    found = o.value().filter(cli.options(o.key_or_group, overrides))
                    choices.append([f"{o.get_key_element()}={v}" for v in found])
                else:
                    choices.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
            except ValueError as e:  # range() with a step of 0
                raise SeqlabError(f"{text}: {e}; check the -m values") from None
            if not choices[-1]:
                raise SeqlabError(f"the sweep has no jobs ({text} is empty); check the -m values")

    def job(i: int, k: int) -> list[str]:
        return [c[k] if j == i else c[0] for j, c in enumerate(choices)]

    jobs = [job(-1, 0), *(job(i, k) for i, c in enumerate(choices) for k in range(1, len(c)))]
    return jobs, math.prod(len(c) for c in choices)


def check_range(text: str, o) -> None:
    """A search range Optuna would refuse only once the sweep runs."""
    if o.is_interval_sweep() and o.value().start > o.value().end:
        raise SeqlabError(f"{text} runs from {o.value().start} down to {o.value().end}; write the low end first")
    if o.is_interval_sweep() and "log" in o.value().tags and o.value().start <= 0:
        raise SeqlabError(f"{text}: a log scale needs a low end above 0; e.g. tag(log, interval(1e-4, 1e-1))")


def search_config(hc, overrides: list[str]) -> str:
    """The experiment's own Optuna search config, where it has one."""
    from seqlab.run import cli

    search = f"{hc.runtime.choices.get('experiment')}_optuna"
    return search if search in cli.options("hparams_search", overrides) else "<a search config>"


def check_sweep(overrides: list[str], hc, first) -> None:
    """What a sweep would get wrong only once it runs: jobs that share a folder, a launcher with
    nowhere to launch, and the settings Hydra's sweeper types but whose range it does not check."""
    import shutil

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from seqlab.run.launch import launcher
    from seqlab.run.schema import SweeperSettings, args, check_arguments, locate
    from seqlab.train import make

    if launcher() is not None:  # (every rank would run the whole sweep)
        raise SeqlabError(
            "-m under torchrun or srun would run the whole sweep in every process; start the sweep alone, with "
            "hydra/launcher=slurm and trainer=ddp for jobs of several GPUs (or hydra/launcher=parallel on one machine)"
        )

    parsed = OverridesParser.create().parse_overrides(overrides)
    swept = [o.key_or_group for o in parsed if o.is_sweep_override()]
    searchpath = [o for o in overrides if o.startswith("hydra.searchpath=")]  # (the user's experiments: glob(mine*))
    sweeper = str(OmegaConf.select(hc, "sweeper._target_", default=""))
    grid, optuna = sweeper.endswith("BasicSweeper"), sweeper.endswith("OptunaSweeper")
    for o in parsed:
        if o.key_or_group in ("experiment", "name") and o.is_sweep_override():  # (jobs in the first's folder)
            raise SeqlabError(
                f"{o.input_line} sweeps over {o.key_or_group}s, whose jobs would share one sweep folder; "
                f"sweep one {o.key_or_group} at a time: -m {grid_jobs([o.input_line, *searchpath])[0][0][0]} …"
            )
        if grid and o.is_interval_sweep():  # (a range of reals is a search's: a grid takes values)
            raise SeqlabError(
                f"{o.input_line} is a search range, and a grid sweep takes values; list some "
                f"({o.key_or_group}=a,b,c), or search it with Optuna (hparams_search={search_config(hc, overrides)})"
            )
        apart = "hydra.job." in o.input_line or (swept and all(f"${{{k}}}" in o.input_line for k in swept))
        if o.key_or_group == "hydra.sweep.subdir" and not apart:  # (a job's number, or every swept value)
            raise SeqlabError(
                f"{o.input_line} can put several jobs of the sweep in one folder; keep ${{hydra.job.num}} (or each "
                f"swept key) in it, e.g. 'hydra.sweep.subdir=${{hydra.job.num}}_{o.get_value_element_as_str()}'"
            )
    launcher = str(OmegaConf.select(hc, "launcher._target_", default=""))
    if launcher.endswith("SlurmLauncher") and not shutil.which("sbatch"):
        raise SeqlabError(
            "hydra/launcher=slurm submits each job with SLURM's sbatch, which this machine has not; run "
            "it on a SLURM login node, or use hydra/launcher=parallel to run the jobs here"
        )
    for part in ("sweeper", "launcher"):  # (enum_to_str: the Optuna sweeper's own default is an enum)
        check_arguments(
            f"hydra.{part}", SweeperSettings, OmegaConf.to_container(hc[part], resolve=True, enum_to_str=True)
        )
    epochs, every = first.trainer.get("max_epochs"), first.trainer.get("check_val_every_n_epoch")
    searched = {*swept, *(OmegaConf.select(hc, "sweeper.params") or {})}
    fixed = not searched & {"trainer.max_epochs", "trainer.check_val_every_n_epoch", "trainer.max_steps", "trainer"}
    if (
        fixed
        and isinstance(epochs, int)
        and isinstance(every, int)
        and 0 < epochs < every
        and str(first.model.monitor).startswith("val/")
        and first.trainer.get("max_steps") in (None, -1)
    ):
        raise SeqlabError(  # (every job would end unmeasured: the sweep would have nothing to compare)
            f"trainer.max_epochs={epochs} ends each job before its first validation (trainer.check_val_every_n_epoch="
            f"{every}), so no job would measure {first.model.monitor}; pass trainer.check_val_every_n_epoch=1 (or "
            f"trainer.max_epochs={every})"
        )
    if optuna and not OmegaConf.select(hc, "sweeper.params") and not swept:  # (each trial would be the same job)
        raise SeqlabError(
            f"hydra/sweeper={hc.runtime.choices.get('hydra/sweeper')} has nothing to search (no hydra.sweeper.params, "
            f"no range on the command line); pass a search config (hparams_search={search_config(hc, overrides)}) "
            f"or ranges such as 'model.optimizer.lr=interval(1e-4,1e-2)'"
        )
    if OmegaConf.is_dict(sampler := OmegaConf.select(hc, "sweeper.sampler")):  # (Optuna's)
        sampler = OmegaConf.to_container(sampler, resolve=True)
        check_arguments("hydra.sweeper.sampler", locate("hydra.sweeper.sampler", sampler), args(sampler))
    if launcher.endswith("JoblibLauncher") and "spawn" in str(first.trainer.get("strategy")):
        raise SeqlabError(
            f"trainer.strategy={first.trainer.strategy} starts processes of its own, which a parallel launcher's "
            f"workers cannot; drop hydra/launcher=parallel (the jobs then run one after another)"
        )
    cores, jobs = os.cpu_count() or 1, OmegaConf.select(hc, "launcher.n_jobs")
    if launcher.endswith("JoblibLauncher") and isinstance(jobs, int) and jobs > cores:  # (a worker process each)
        raise SeqlabError(
            f"hydra.launcher.n_jobs={jobs} but this machine has {cores} CPU cores; pass hydra.launcher.n_jobs={cores} "
            f"(or -1: one job per core)"
        )
    if launcher.endswith("JoblibLauncher"):  # its settings are joblib.Parallel's: joblib checks them
        make("hydra.launcher", {**OmegaConf.to_container(hc.launcher, resolve=True), "_target_": "joblib.Parallel"})
