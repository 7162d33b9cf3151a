"""Training under a real SLURM (slurmctld, slurmd and munged of Debian's slurm-wlm 22.05 and
munge, started here on private ports and a private munge socket, one node): a `--requeue` job
preempted mid-epoch with `scancel --signal=TERM` checkpoints, exits 143, requeues itself, and
its second run ends with exactly the weights and batch log of an uninterrupted run; a plain
`scancel` cancels such a job (exit 143, checkpoint kept, not requeued). `.ci/run` installs the
packages where it can; without them (or without root, which slurmd needs) this file is
skipped, saying why."""

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import COMMON, ENV, ended_as, free_port, train_args

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "srun")
MISSING = [name for name in DAEMONS if shutil.which(name) is None]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"SLURM is not installed (no {', '.join(MISSING)}): apt-get install slurmctld "
        "slurmd slurm-client munge",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="slurmd runs jobs as root only"),
]

# KillWait: seconds between SLURM's SIGTERM and its SIGKILL; cred_expire: seconds a requeued
# job waits before it starts again (120 by default); sched_interval: the scheduler looks at
# pending jobs every second (60 by default)
SLURM_CONF = """\
ClusterName=cnn3dtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/socket,cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
KillWait=20
MinJobAge=600
NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    """A one-node SLURM in `root`; `env` is the environment its client commands need."""

    def __init__(self, root: Path):
        self.root = root
        self.env = dict(ENV, SLURM_CONF=str(root / "slurm.conf"))
        self.daemons: list[subprocess.Popen] = []

    def start(self) -> None:
        root, host = self.root, socket.gethostname()
        (root / "munge").mkdir(mode=0o700)
        for folder in ("state", "spool"):
            (root / folder).mkdir()
        key = root / "munge" / "key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munge = [f"--socket={root}/munge/socket", f"--key-file={key}"]
        munge += [f"--pid-file={root}/munge/pid", f"--log-file={root}/munge/log"]
        self.daemon("munged", "--foreground", "--force", *munge, f"--seed-file={root}/munge/seed")
        wait_for(lambda: (root / "munge" / "socket").exists(), "munged's socket", root)
        conf = SLURM_CONF.format(
            root=root, host=host, node=host.split(".")[0],
            ctld_port=free_port(), d_port=free_port(),
        )  # fmt: skip
        (root / "slurm.conf").write_text(conf)
        self.daemon("slurmctld", "-D", "-f", str(root / "slurm.conf"))
        self.daemon("slurmd", "-D", "-f", str(root / "slurm.conf"))
        wait_for(lambda: self.run("sinfo", "-h", "-o", "%t").stdout.strip() == "idle", "an idle node", root)  # fmt: skip

    def daemon(self, *cmd: str) -> None:
        log = open(self.root / f"{cmd[0]}.out", "w")  # noqa: SIM115  (closed with the process)
        process = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.daemons.append(process)

    def run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)

    def field(self, job: str, name: str) -> str:
        """`name` of `scontrol show job` (the job state: JobState)."""
        for word in self.run("scontrol", "show", "job", "--oneliner", job).stdout.split():
            if word.startswith(f"{name}="):
                return word.split("=", 1)[1]
        return ""

    def stop(self) -> None:
        """Cancel what is left, then end every process this cluster started: the daemons, and
        the job steps slurmd daemonized (they carry this cluster's SLURM_CONF)."""
        with contextlib.suppress(Exception):
            self.run("scancel", "--partition", "debug")
            wait_for(lambda: not self.run("squeue", "-h").stdout.strip(), "no jobs", self.root, 30)  # fmt: skip
        for process in reversed(self.daemons):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        marker = f"SLURM_CONF={self.env['SLURM_CONF']}\0".encode()
        for pid in [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]:
            with contextlib.suppress(OSError):
                if marker in Path(f"/proc/{pid}/environ").read_bytes() and pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)


def wait_for(condition, what: str, root: Path, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            logs = {p.name: p.read_text()[-2000:] for p in root.glob("*.out")}
            logs |= {p.name: p.read_text()[-2000:] for p in root.glob("*.log")}
            raise AssertionError(f"no {what} after {timeout_s} s: {logs}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # a short path: a unix socket's fits in 108 bytes
    root = Path(tmp_path_factory.mktemp("slurm"))
    cluster = Cluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


JOB = """\
#!/bin/bash
#SBATCH --requeue --open-mode=append --output={out}
# SLURM's requeue ends the script with SIGTERM too: it is noted, so that srun's status is kept
trap 'echo "batch script: SIGTERM"' TERM
srun {command}
echo "$? ${{SLURM_RESTART_COUNT:-0}}" >> {exits}
"""


def submit(cluster, tiny, folder: Path) -> str:
    """A `--requeue` job that trains with `--resume auto --requeue` into `folder`/run; its id."""
    argv = train_args(tiny, folder / "run", *COMMON, "--resume", "auto", "--requeue")
    command = shlex.join([sys.executable, "-m", "cnn3d", *argv])
    script = folder / "job.sh"
    script.write_text(JOB.format(out=folder / "job.out", exits=folder / "exits", command=command))
    done = cluster.run("sbatch", "--parsable", "--chdir", str(folder), str(script))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def signal_mid_epoch(cluster, folder: Path, job: str, *scancel: str) -> None:
    """`scancel *scancel job` once epoch 2's first step is in the batch log."""
    log = folder / "run" / "train_batch.log"
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) > 4, "epoch 2", cluster.root, 120)  # fmt: skip
    assert cluster.run("scancel", *scancel, job).returncode == 0


@pytest.mark.timeout(300)
def test_a_preempted_job_requeues_itself_and_ends_as_an_uninterrupted_run(
    cluster,
    tiny,
    tmp_path,
    straight,
):
    job = submit(cluster, tiny, tmp_path)
    signal_mid_epoch(cluster, tmp_path, job, "--signal=TERM")
    wait_for(lambda: cluster.field(job, "Restarts") == "1", "requeue", cluster.root, 60)
    wait_for(lambda: cluster.field(job, "JobState") == "COMPLETED", "end", cluster.root, 120)
    out = (tmp_path / "job.out").read_text()
    # srun's status of each run, and the run (SLURM_RESTART_COUNT): a clean stop, then done
    assert (tmp_path / "exits").read_text().splitlines() == ["143 0", "0 1"], out
    assert f"SLURM job {job} requeued" in out and "interrupted (SIGTERM)" in out, out
    assert "Exited with exit code 143" in out and "Terminated" not in out, out  # (srun's words)
    assert "resumed from" in out and "Traceback" not in out, out
    ended_as(straight, tmp_path / "run")


@pytest.mark.timeout(300)
def test_a_plain_scancel_cancels_a_requeue_job(cluster, tiny, tmp_path):
    job = submit(cluster, tiny, tmp_path)
    signal_mid_epoch(cluster, tmp_path, job)
    wait_for(lambda: cluster.field(job, "JobState") == "CANCELLED", "cancel", cluster.root, 60)
    out = (tmp_path / "job.out").read_text()
    assert (tmp_path / "exits").read_text().splitlines() == ["143 0"], out
    assert "not RUNNING (scancel ends a job this way): not requeued" in out, out
    assert "interrupted (SIGTERM)" in out and "--resume auto" in out, out
    time.sleep(8)  # longer than a requeued job waits (cred_expire, 5 s)
    assert cluster.field(job, "JobState") == "CANCELLED"
    assert cluster.field(job, "Restarts") == "0"
