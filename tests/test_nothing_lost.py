"""Nothing a command did not make is ever moved or deleted: resume= never touches the run's .hydra/
or its TensorBoard files, a refused or killed resume leaves the run as it was, and the faults a
scheduler, a terminal or a disk cause end in one line that says how to continue."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_CHARLM, one_line_error, run_cli

GRU = ["experiment=gru_toy", "trainer.enable_progress_bar=false", "trainer.check_val_every_n_epoch=1"]


def files(run) -> dict:
    """Every file of a run with its bytes (a checkpoint's, its digest-worthy size and mtime)."""
    return {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def kept(before: dict, run) -> bool:
    """Every event file, the run's record and its last and best checkpoints are still there (a
    resumed run may add event files, rewrite last.ckpt and keep a better best-*.ckpt in place of
    the best one, as ModelCheckpoint(save_top_k=1) does: never lose one)."""
    now = files(run)
    lasting = [k for k in before if k.parts[0] in ("tensorboard", "csv", ".hydra") or k.name == "last.ckpt"]
    return all(k in now for k in lasting) and len(list(run.glob("checkpoints/best-*.ckpt"))) == 1


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "run"
    proc = run_cli("seqlab.train", *GRU, "trainer.max_epochs=3", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def test_the_sequence_that_lost_a_runs_history(run, tmp_path):
    """--cfg with resume= shows the run's own config and writes nothing; a refused resume after it
    keeps every file; a good one adds to the run."""
    before = files(run)
    proc = run_cli("seqlab.train", f"resume={run}", "--cfg", "job", cwd=tmp_path, in_process=True)
    assert proc.returncode == 0 and "experiment" not in proc.stdout and "max_epochs: 3" in proc.stdout, proc.stderr
    assert files(run) == before
    msg = one_line_error(
        run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path, in_process=True)
    )
    assert "has trained 3 epochs, all that trainer.max_epochs=2 asks for" in msg and files(run) == before
    proc = run_cli("seqlab.train", f"resume={run}", "--info", "config", cwd=tmp_path, in_process=True)
    assert proc.returncode == 0 and files(run) == before
    proc = run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert kept(before, run) and torch.load(run / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 4
    assert {p: before[p] for p in before if p.parts[0] == ".hydra"} == {
        p: b for p, b in files(run).items() if p.parts[0] == ".hydra"
    }  # the run's record as it was started, untouched


def test_a_run_with_its_own_configs_resumes_from_another_folder(tmp_path):
    mine = tmp_path / "mine" / "experiment"
    mine.mkdir(parents=True)
    (mine / "tiny.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: gru_toy\n  - override /model: gru_toy\n"
        "name: tiny\nmodel:\n  hidden_size: 3\ntrainer:\n  max_epochs: 1\n"
    )
    (tmp_path / "a").mkdir()
    proc = run_cli("seqlab.train", "--config-dir", "../mine", "experiment=tiny", *GRU[1:], cwd=tmp_path / "a")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = next((tmp_path / "a" / "outputs" / "tiny" / "runs").iterdir())
    (tmp_path / "b").mkdir()
    proc = run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path / "b")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["hyper_parameters"]["hidden_size"] == 3  # the user's experiment, again
    assert not (tmp_path / "b" / "outputs").exists()


def test_callbacks_none_keeps_no_checkpoint_anywhere(tmp_path):
    """Lightning adds a checkpoint callback of its own where a run has none: it wrote under
    tensorboard/, the report named it, and resume= said the run kept none."""
    run = tmp_path / "run"
    proc = run_cli("seqlab.train", *GRU, "callbacks=none", "trainer.max_epochs=1", f"hydra.run.dir={run}",
                   cwd=tmp_path, in_process=True)  # fmt: skip
    assert proc.returncode == 0 and "best checkpoint" not in proc.stdout, proc.stderr[-3000:]
    assert not list(tmp_path.rglob("*.ckpt")) and (run / "tensorboard").is_dir()
    assert "kept no checkpoints" in one_line_error(run_cli("seqlab.train", f"resume={run}", cwd=tmp_path))


def test_a_runs_relative_data_path_is_read_from_where_it_started(small_text, tmp_path):
    """data.path=corpus.txt, then resume= and seqlab-eval from another folder: the run's own file, not
    ./corpus.txt there (a file seqlab-eval or the resume cannot find would be a refusal)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "corpus.txt").write_text(small_text.read_text())
    (tmp_path / "b" / "corpus.txt").write_text("☃ж€ " * 500)  # (an alphabet of its own)
    tiny = ["experiment=charlm", *TINY_CHARLM, "trainer.limit_train_batches=2", "trainer.limit_val_batches=2"]
    run = tmp_path / "run"
    proc = run_cli(
        "seqlab.train",
        *tiny,
        "data.path=corpus.txt",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run}",
        cwd=tmp_path / "a",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path / "b", in_process=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1 and f"data.path={tmp_path / 'a' / 'corpus.txt'}" in ckpt["seqlab_run"]["overrides"]
    proc = run_cli("seqlab.eval", f"ckpt_path={run}/checkpoints/last.ckpt", cwd=tmp_path / "b", in_process=True)
    assert proc.returncode == 0 and "test/loss" in proc.stdout, proc.stderr[-3000:]
    proc = run_cli(
        "seqlab.eval",
        f"ckpt_path={run}/checkpoints/last.ckpt",
        "data.path=corpus.txt",
        cwd=tmp_path / "b",
        in_process=True,
    )  # a path given now is the user's, read from here
    assert "alphabet" in one_line_error(proc)
    assert not (tmp_path / "b" / "outputs").exists()
    from seqlab.checkpoint import in_start_folder

    a = str(tmp_path / "a")
    assert in_start_folder("path", "corpus.txt", a) == f"{a}/corpus.txt"
    assert in_start_folder("language", "corpus.txt", a) == "corpus.txt"  # (a key that is no path's)
    assert in_start_folder("text_file", "x" * 300, a) == "x" * 300  # (a name too long for a file)
    from seqlab.run.resume import replayed

    (tmp_path / "a b").mkdir()
    (tmp_path / "a b" / "c.txt").write_text("x")
    assert replayed("data.path=c.txt", str(tmp_path / "a b")) == f"data.path='{tmp_path}/a b/c.txt'"  # (quoted)


@pytest.mark.slow
def test_kill_9_at_any_moment_of_a_resumes_start(run, tmp_path):
    """Killed while it imports, at its first write into the run, and as its first new event file
    appears (moments the run folder shows, not delays, which a slow machine would shift)."""
    before = files(run)

    def state():
        return {(p, p.stat().st_mtime_ns) for p in run.rglob("*")}

    events = set(run.glob("tensorboard/events.*"))
    moments = (
        lambda start, t: t > 0.5,
        lambda start, t: state() != start,
        lambda start, t: set(run.glob("tensorboard/events.*")) - events,
    )
    for moment in moments:
        start, began = state(), time.monotonic()
        job = subprocess.Popen(
            [sys.executable, "-m", "seqlab.train", f"resume={run}", "trainer.max_epochs=50"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while job.poll() is None and not moment(start, time.monotonic() - began):
            time.sleep(0.01)
        job.kill()
        job.wait()
        assert kept(before, run), moment
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # whole, whenever it was written
    done = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] + 1
    proc = run_cli("seqlab.train", f"resume={run}", f"trainer.max_epochs={done + 2}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert kept(before, run) and not list(run.rglob("*.tmp"))


def test_damaged_or_edited_run_state(run, tmp_path):
    (run / ".hydra" / "overrides.yaml").write_text("- model.hidden_size=[unclosed\n")  # edited: never read again
    proc = run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=4", cwd=tmp_path, in_process=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    msg = one_line_error(
        run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=5", cwd=tmp_path, in_process=True)
    )
    assert f"resume={run}: its checkpoints/last.ckpt cannot be used (cannot read checkpoint {last}" in msg
    assert f"ckpt_path={run}/checkpoints/best-" in msg


def test_two_resumes_at_once(run, tmp_path):
    """One trains; the other is refused before it writes anything."""
    before = files(run)
    args = [sys.executable, "-m", "seqlab.train", f"resume={run}", "trainer.max_epochs=30"]
    jobs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)]
    events = len(list(run.glob("tensorboard/events.*")))
    while len(list(run.glob("tensorboard/events.*"))) == events and jobs[0].poll() is None:
        time.sleep(0.05)  # (until the first one trains)
    jobs.append(subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    (_, first), (_, second) = (job.communicate(timeout=300) for job in jobs)
    assert jobs[0].returncode == 0, first[-3000:]
    msg = one_line_error(subprocess.CompletedProcess([], jobs[1].returncode, "", second))
    assert "that run is still going" in msg and kept(before, run)


def test_a_resume_that_changes_the_run(run, tmp_path):
    msg = one_line_error(
        run_cli("seqlab.train", f"resume={run}", "model/optimizer=sgd", "trainer.max_epochs=5", in_process=True)
    )
    assert "was trained with model.optimizer torch.optim.Adam, this run asks for torch.optim.SGD" in msg
    msg = one_line_error(run_cli("seqlab.train", f"resume={run}", "experiment=charlm", in_process=True))
    assert "resume= continues a run as it was started (experiment=gru_toy); drop experiment=charlm" in msg
    msg = one_line_error(run_cli("seqlab.train", f"resume={run}", "model.hidden_size=5", in_process=True))
    assert msg.endswith(
        "has another network than this run: model.hidden_size (8 there, 5 here); resume= keeps the run's network: "
        "pass model.hidden_size=8, or undo what changed it (an override, a config file, an environment variable)"
    )


def _mount(folder, options: str) -> bool:
    folder.mkdir(exist_ok=True)
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode
        == 0
    )


def test_a_resume_reads_the_runs_own_configs_as_a_new_run_would(tmp_path):
    """The experiment file a resumed run names is checked as a new run's is (its package line)."""
    mine = tmp_path / "mine" / "experiment"
    mine.mkdir(parents=True)
    tiny = (
        "defaults:\n  - override /data: gru_toy\n  - override /model: gru_toy\nname: tiny\nmodel:\n  hidden_size: 3\n"
    )
    (mine / "tiny.yaml").write_text("# @package _global_\n" + tiny)
    proc = run_cli(
        "seqlab.train", "--config-dir", "mine", "experiment=tiny", *GRU[1:], "trainer.max_epochs=1", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = next((tmp_path / "outputs" / "tiny" / "runs").iterdir())
    other = tmp_path / "other" / "experiment"
    other.mkdir(parents=True)
    (other / "tiny.yaml").write_text(tiny)
    before = files(run)
    msg = one_line_error(
        run_cli("seqlab.train", f"resume={run}", "--config-dir", "other", "trainer.max_epochs=2", cwd=tmp_path)
    )
    assert msg == (
        f"error: {other}/tiny.yaml lacks a first line '# @package _global_'; without it its keys land "
        "under experiment.*, where nothing reads them; give it '# @package _global_' as its first line"
    )
    assert kept(before, run)


def test_machine_faults_a_library_wraps_or_that_come_before_the_run(tmp_path):
    """A logger's EPERM (chattr +i) wrapped in its own error, running out of memory, and a current
    folder removed before the command started."""
    import errno

    from seqlab.run.explain import explain

    wrapped = ValueError("a logger's own words")
    wrapped.__cause__ = PermissionError(errno.EPERM, "Operation not permitted", str(tmp_path / "events"))
    assert explain(wrapped, []) == (
        f"Operation not permitted ({tmp_path / 'events'}); check the permissions and the file's attributes "
        f"(lsattr); start it again"
    )
    assert explain(MemoryError(), []).startswith("out of memory (the machine's, or a limit such as ulimit -v)")
    assert explain(ValueError("x"), []) is None  # (anything else keeps its traceback)
    import multiprocessing

    optuna = pytest.importorskip("optuna")
    assert explain(optuna.exceptions.StorageInternalError("its words"), []).startswith(
        "the Optuna study's database (hydra.sweeper.storage) cannot be written"
    )
    assert explain(multiprocessing.TimeoutError(), []).startswith("a job of the parallel sweep ran longer than")
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.run(
        f"cd {gone} && rmdir {gone} && exec {sys.executable} -c 'from seqlab.commands import train; train()'",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr == (
        "error: the current folder was removed after the shell entered it; cd to a folder that exists\n"
    )
    # … or while the libraries are imported (a path made absolute there finds no current folder)
    code = (
        "import importlib, os, sys; from seqlab import commands\n"
        "def removing(name): os.rmdir(os.getcwd()); os.path.abspath('x')\n"
        "importlib.import_module = removing; commands.train()"
    )
    gone.mkdir()
    proc = subprocess.run([sys.executable, "-c", code], cwd=gone, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == (
        "error: the current folder was removed while seqlab started; nothing was written: cd to a folder that exists\n"
    ), proc.stderr


def test_a_terminal_that_cannot_show_a_samples_characters(tmp_path):
    """PYTHONIOENCODING=ascii: a character the terminal cannot show is written as an escape."""
    code = "from seqlab.run.cli import setup_process; setup_process(); print('M\\xe4')"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env={**os.environ, "PYTHONIOENCODING": "ascii"}
    )
    assert proc.returncode == 0 and proc.stdout == b"M\\xe4\n", proc.stderr[-3000:]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small file system (needs root)")
def test_a_full_or_read_only_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount(disk, "size=2m"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = disk / "run"
        proc = run_cli("seqlab.train", *GRU, "trainer.max_epochs=2", f"hydra.run.dir={run}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        before = files(run)
        need = (run / "checkpoints" / "last.ckpt").stat().st_size
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * (free - need))  # less room than a checkpoint needs
        msg = one_line_error(run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=6", in_process=True))
        assert "KiB free, less than the" in msg and f"free some space, then: python -m seqlab.train resume={run}" in msg
        (disk / "filler").unlink()
        (disk / "filler").write_bytes(b"\0" * (free - 2 * need - 4096))  # room to start, not to finish
        proc = run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=6", cwd=tmp_path)
        msg = one_line_error(proc)  # (the checkpoint's or TensorBoard's write, whichever comes first)
        assert msg.startswith("error: No space left on device (") and msg.endswith(
            f"; free some space; continue with: python -m seqlab.train resume={run}"
        )
        assert kept(before, run) and torch.load(run / "checkpoints/last.ckpt", weights_only=True)["epoch"] >= 1
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        msg = one_line_error(run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=6", in_process=True))
        assert f"{run}/checkpoints cannot be written (a read-only disk, or its permissions)" in msg
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_closed_output_and_input(run, tmp_path):
    """| head closes stdout: the work is done and kept, the command ends quietly; <&- closes stdin."""
    args = [sys.executable, "-m", "seqlab.train", *GRU, "trainer.max_epochs=1", f"paths.root_dir={tmp_path}"]
    proc = subprocess.run(f"{' '.join(args)} <&- | head -c 1", shell=True, cwd=tmp_path, capture_output=True)
    assert b"Traceback" not in proc.stderr and list(tmp_path.glob("outputs/gru_toy/runs/*/checkpoints/last.ckpt"))
    last = run / "checkpoints" / "last.ckpt"
    gen = f"{sys.executable} -m seqlab.generate ckpt_path={last} prompt=Ma length=5000 | head -c 3"
    proc = subprocess.run(gen, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert proc.stdout.startswith("Ma") and len(proc.stdout) == 3 and "Traceback" not in proc.stderr, proc.stderr
    chat = subprocess.run(
        [sys.executable, "-m", "seqlab.chat", f"ckpt_path={last}"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert chat.returncode == 0 and chat.stdout == "" and "Traceback" not in chat.stderr  # (no lines: no replies)


def test_chat_input_that_is_not_lines_of_text(run, tmp_path):
    """A line with no end (/dev/zero) is refused before it fills the memory; an over-long line that
    ends is skipped, and the chat goes on."""
    chat = f"{sys.executable} -m seqlab.chat ckpt_path={run}/checkpoints/last.ckpt length=2"
    proc = subprocess.run(f"{chat} < /dev/zero", shell=True, capture_output=True, text=True, cwd=tmp_path)
    assert one_line_error(proc) == "error: the input has no line ends (binary data?); send text, one message a line"
    long = f"{'x' * 150_000}\nMa\n"
    proc = subprocess.run(chat, shell=True, capture_output=True, text=True, cwd=tmp_path, input=long)
    replies = proc.stdout.splitlines()
    assert proc.returncode == 0 and replies[0].startswith("Sorry") and len(replies) >= 2, proc.stderr[-2000:]
    assert "(a message is at most 100,000 characters; that line was skipped)" in proc.stderr
    utf16 = subprocess.run(chat, shell=True, capture_output=True, cwd=tmp_path, input="Ma\n".encode("utf-16"))
    assert one_line_error(subprocess.CompletedProcess([], utf16.returncode, "", utf16.stderr.decode())) == (
        "error: the input is UTF-16 text; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8 <file>)"
    )


def training(run):
    """A run in its own process that trains on until stopped, once its first last.ckpt is written."""
    job = subprocess.Popen(
        [sys.executable, "-m", "seqlab.train", *GRU, "trainer.max_epochs=100000", f"hydra.run.dir={run}"],
        cwd=run.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (run / "checkpoints" / "last.ckpt").exists() and job.poll() is None:
        time.sleep(0.05)
    return job


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT])
def test_a_terminals_and_a_schedulers_other_signals(sig, tmp_path):
    """SIGHUP (a closed terminal), SIGUSR1 (a scheduler's warning), SIGQUIT (Ctrl-\\) stop a run as
    Ctrl-C does: at a step, last.ckpt written, one line, 128 + the signal."""
    run = tmp_path / "run"
    job = training(run)
    job.send_signal(sig)
    err = job.communicate(timeout=120)[1]
    assert job.returncode == 128 + sig, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"stopped by {signal.Signals(sig).name} at step ") and f"resume={run}" in last


def test_a_run_folder_removed_while_it_trains(tmp_path):
    """rm -rf of the run's folder mid-run: one line (no writer thread's traceback), exit 2."""
    run = tmp_path / "run"
    job = training(run)
    subprocess.run(["rm", "-rf", str(run)], check=True)
    err = job.communicate(timeout=120)[1]
    assert job.returncode == 2 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"error: the run folder {run} was removed while the command ran, and its checkpoints with it; start again"
    )


def test_a_run_folder_removed_and_made_again_by_a_checkpoint_is_still_removed(tmp_path):
    """After rm -rf the next checkpoint creates the folder anew before the logger's writer fails on
    its lost file: the folder is another, and the line says the run's was removed."""
    from contextlib import ExitStack

    from seqlab.run.cli import Context
    from seqlab.run.explain import explain

    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    lost = FileNotFoundError(2, "No such file or directory", os.fsencode(run / "tensorboard" / "events"))
    with ExitStack() as stack:
        ctx = Context(stack, "seqlab-train", run_dir=run)
        ctx.hold_run_dir()
    assert explain(lost, [], ctx) is None  # (the folder is the run's: a bug, with its traceback)
    with ExitStack() as stack:
        ctx = Context(stack, "seqlab-train", run_dir=run)
        ctx.hold_run_dir()
        subprocess.run(["rm", "-rf", str(run)], check=True)
        (run / "checkpoints").mkdir(parents=True)
    assert explain(lost, [], ctx) == (
        f"the run folder {run} was removed while the command ran, and its checkpoints with it; start again"
    )


def test_several_nodes_without_a_launcher_is_an_answer_not_a_hang(tmp_path):
    msg = one_line_error(run_cli("seqlab.train", *GRU, "trainer.num_nodes=2", cwd=tmp_path, in_process=True))
    assert "trainer.num_nodes=2 needs a launcher that starts the command on every node (torchrun --nnodes=2" in msg


def test_keys_and_files_that_nothing_would_read(tmp_path):
    msg = one_line_error(run_cli("seqlab.train", *GRU, "+colour=blue", cwd=tmp_path, in_process=True))
    assert msg == "error: colour is a key that nothing reads; drop it (seqlab-train --cfg job lists the keys)"
    msg = one_line_error(run_cli("seqlab.train", *GRU, "+model.colour=blue", cwd=tmp_path, in_process=True))
    assert "model.colour is not an argument of GRUToyModule" in msg
    mine = tmp_path / "mine" / "experiment"
    mine.mkdir(parents=True)
    (mine / "forgot.yaml").write_text("name: forgot\nmodel:\n  hidden_size: 3\n")  # (no '# @package _global_')
    msg = one_line_error(
        run_cli("seqlab.train", "--config-dir", str(tmp_path / "mine"), "experiment=forgot", in_process=True)
    )
    assert "give it '# @package _global_' as its first line" in msg
    assert not (tmp_path / "outputs").exists()


def test_a_terminal_one_column_wide(tmp_path):
    """COLUMNS=1: the run completes and reports (Lightning's table of test metrics, which the report
    repeats, divided by its width)."""
    proc = run_cli(
        "seqlab.train", *GRU, "trainer.max_epochs=1", "hydra.run.dir=run", cwd=tmp_path, env={"COLUMNS": "1"}
    )
    assert proc.returncode == 0 and "test/loss:" in proc.stdout, proc.stderr[-3000:]
    assert (tmp_path / "run" / "result.json").is_file()


def test_hydra_verbose_turns_on_debug_logging(tmp_path):
    """hydra.verbose=true: every library's debug records on stderr, as Hydra's own runs give them."""
    proc = run_cli(
        "seqlab.train", *GRU, "trainer.max_epochs=1", "hydra.verbose=true", "hydra.run.dir=run", cwd=tmp_path
    )
    assert proc.returncode == 0 and "][DEBUG] " in proc.stderr, proc.stderr[-3000:]
    quiet = run_cli("seqlab.train", *GRU, "trainer.max_epochs=1", "hydra.run.dir=run2", cwd=tmp_path)
    assert quiet.returncode == 0 and "][DEBUG] " not in quiet.stderr


def test_a_resume_keeps_the_csv_metrics_of_the_runs_first_start(tmp_path):
    """logger=many (TensorBoard and CSV): the resumed run writes its CSV rows beside the first
    start's, which Lightning's CSV writer would otherwise empty."""
    run = tmp_path / "run"
    proc = run_cli("seqlab.train", *GRU, "logger=many", "trainer.max_epochs=1", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = files(run)
    assert (run / "csv" / "version_0" / "metrics.csv").read_text().count("\n") > 1
    proc = run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path)
    assert proc.returncode == 0 and "site-packages" not in proc.stderr, proc.stderr[-3000:]
    assert (
        kept(before, run)
        and (run / "csv" / "version_0" / "metrics.csv").read_bytes() == before[Path("csv/version_0/metrics.csv")]
    )
    assert "val/loss" in (run / "csv" / "version_1" / "metrics.csv").read_text()


def test_mixed_precision_on_the_cpu_says_what_it_runs_once(tmp_path):
    """16-mixed on the CPU runs as bf16-mixed: Lightning's one accurate line, not also the model
    summary's note that it cannot size bf16 weights."""
    proc = run_cli(
        "seqlab.train",
        *GRU,
        "trainer.max_epochs=1",
        "trainer.precision=16-mixed",
        "hydra.run.dir=run",
        cwd=tmp_path,
        env={"PYTHONWARNINGS": ""},
    )
    notes = [line for line in proc.stderr.splitlines() if "site-packages" in line]
    assert proc.returncode == 0 and len(notes) == 1 and "bf16" in notes[0], proc.stderr
