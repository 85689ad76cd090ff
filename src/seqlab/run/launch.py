"""One run, however many processes a launcher starts: under torchrun or srun every process runs
the whole command, so rank 0 claims the run's folder and the others are told it, before anything
is written.

torchrun: through the launcher's own TCP store (MASTER_ADDR:MASTER_PORT, which its processes
share). srun: through a file beside the run folders (a SLURM job's nodes share the file system),
named by the job, its step and its requeue count, which rank 0 removes when the run ends.
"""

import dataclasses
import os
import time
from datetime import timedelta
from pathlib import Path

from seqlab.errors import SeqlabError

WAIT_S = 300  # how long a rank waits for rank 0's folder (rank 0 may be composing, checking, resuming)


@dataclasses.dataclass
class Launch:
    torchrun: bool  # else srun
    rank: int
    world: int


def launcher() -> Launch | None:
    """The launch this process is one rank of, when several processes of it run this command
    (torchrun, srun: as Lightning's TorchElasticEnvironment and SLURMEnvironment detect them);
    None otherwise (one process, or Lightning starting the others itself)."""
    from lightning.pytorch.plugins import environments as envs

    if "SEQLAB_RUN_DIR" in os.environ:  # (a process Lightning started: it runs in its parent's folder)
        return None
    env = os.environ
    if envs.TorchElasticEnvironment.detect():
        found = Launch(True, int(env["RANK"]), int(env.get("WORLD_SIZE", 1)))
    elif envs.SLURMEnvironment.detect():
        found = Launch(False, int(env["SLURM_PROCID"]), int(env.get("SLURM_NTASKS", 1)))
    else:
        return None
    return found if found.world > 1 else None


def key(launch: Launch) -> str:
    env = os.environ
    if launch.torchrun:
        return f"{env.get('TORCHELASTIC_RUN_ID', '')}.{env.get('TORCHELASTIC_RESTART_COUNT', 0)}"
    return f"{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', 0)}.{env.get('SLURM_RESTART_COUNT', 0)}"


def check_store(launch: Launch) -> None:
    """torchrun's store answers: else the variables are left from a torchrun session, and TCPStore
    would wait WAIT_S for nothing, deaf to Ctrl-C."""
    import socket

    env = os.environ
    if not launch.torchrun or not env.get("MASTER_ADDR") or not env.get("MASTER_PORT", "").isdigit():
        return  # (a port that is no number: check says so)
    try:
        socket.create_connection((env["MASTER_ADDR"], int(env["MASTER_PORT"])), timeout=10).close()
    except OSError:
        raise SeqlabError(
            f"the environment says torchrun started this process (RANK={launch.rank}, WORLD_SIZE={launch.world}), "
            f"but nothing answers at MASTER_ADDR:MASTER_PORT={env['MASTER_ADDR']}:{env['MASTER_PORT']}; unset the "
            f"variables left from torchrun (TORCHELASTIC_RUN_ID, RANK, WORLD_SIZE, …), or start the run with torchrun"
        ) from None


def store():
    from torch.distributed import TCPStore

    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    return TCPStore(host, port, is_master=False, timeout=timedelta(seconds=WAIT_S))


def publish(launch: Launch, folder: Path, runs: Path, stack) -> None:
    """Rank 0: tell the other ranks the run's folder."""
    if launch.torchrun:
        store().set(f"seqlab/run_dir/{key(launch)}", str(folder))
        return
    note = runs / f".launch-{key(launch)}"
    note.parent.mkdir(parents=True, exist_ok=True)
    tmp = note.with_name(f"{note.name}.{os.getpid()}")
    tmp.write_text(str(folder))
    os.replace(tmp, note)
    stack.callback(note.unlink, missing_ok=True)


def receive(launch: Launch, runs: Path) -> Path:
    """Another rank: the folder rank 0 claimed."""
    if launch.torchrun:
        try:
            return Path(store().get(f"seqlab/run_dir/{key(launch)}").decode())
        except RuntimeError:  # (the store's timeout: rank 0 ended before it claimed a folder)
            raise SeqlabError(f"rank {launch.rank}: rank 0 named no run folder in {WAIT_S} s; see its error") from None
    note = runs / f".launch-{key(launch)}"
    for _ in range(WAIT_S * 10):
        if note.is_file():
            return Path(note.read_text())
        time.sleep(0.1)
    raise SeqlabError(f"rank {launch.rank}: rank 0 named no run folder in {WAIT_S} s ({note}); see its error")
