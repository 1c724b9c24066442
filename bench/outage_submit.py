"""How long one submission holds a cycle while slurmctld is down, and how often it is tried.

Issue 16 measured 40-71 s for one submission during a controller outage (sbatch waits for
slurmctld, and the connector tried it 4 times). This stops the lab's slurmctld, asks the
Slurm connector (``--modes``: its commands here, or slurmrestd with the files over SSH) to
submit two jobs one after the other, as a cycle would, and prints per mode the seconds each
call took and how many submissions reached sbatch or slurmrestd. slurmctld is started again
whatever happens.

    uv run --frozen python bench/outage_submit.py [--modes local,rest]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from lab import CLUSTER_SH, lab_environment, lab_settings

from efi_connector_slurm import SlurmConnector
from efi_job_manager.connector import JobSpec, TransientError


def _spec(root: Path) -> JobSpec:
    job_id = random.randint(10**8, 10**9)  # noqa: S311 - not a secret
    job_dir = root / str(job_id)
    job_dir.mkdir()
    (job_dir / "params.json").write_text(json.dumps({"final_output_dir": str(job_dir)}))
    return JobSpec(job_id, "est_generate_fasta", job_dir, ("/bin/true",), {}, "est")


def measure(mode: str) -> dict[str, Any]:
    """Two submissions with slurmctld stopped: seconds each, and the scheduler calls made."""
    connector = SlurmConnector({**lab_settings(mode), "partition": "efi"})
    calls: list[str] = []
    if connector.rest is not None:
        submit = connector.rest.submit

        def counting(*args: Any) -> str:
            calls.append("slurmrestd")
            return submit(*args)

        connector.rest.submit = counting  # type: ignore[method-assign]
    else:
        run = connector.transport.run

        def counting_run(argv: Any, **kwargs: Any) -> Any:
            if argv and argv[0] == "sbatch":
                calls.append("sbatch")
            return run(argv, **kwargs)

        connector.transport.run = counting_run  # type: ignore[method-assign]
    env = lab_environment()
    seconds = []
    with tempfile.TemporaryDirectory(dir=env["EFI_SLURM_SCRATCH"]) as root:
        Path(root).chmod(0o777)
        specs = [_spec(Path(root)) for _ in range(2)]
        params = [connector.prepare_job_environment(spec) for spec in specs]
        subprocess.run([str(CLUSTER_SH), "stop", "slurmctld"], env=env, check=True,
                       capture_output=True)
        try:
            for spec, path in zip(specs, params, strict=True):
                started = time.monotonic()
                with contextlib.suppress(TransientError):
                    connector.submit_job(spec, path)
                seconds.append(round(time.monotonic() - started, 1))
        finally:
            subprocess.run([str(CLUSTER_SH), "start", "slurmctld"], env=env, check=True,
                           capture_output=True)
            connector.close()
    return {"mode": mode, "seconds": seconds, "scheduler calls": len(calls)}


def main() -> None:
    """Measure each mode and print one JSON line per mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="local,rest")
    for mode in parser.parse_args().modes.split(","):
        print(json.dumps(measure(mode)), flush=True)


if __name__ == "__main__":
    main()
