"""Capture what the lab's real slurmrestd answers, for the REST parsers' tests.

Run as root with the lab up (``tests/slurm/cluster.sh up``); it submits a few small jobs as
the lab's user (``efijm``) through slurmrestd, waits for them to end, and writes each answer
(HTTP status, content type, body as sent) to ``connectors-slurm/tests/data/rest/<name>.json``,
and the daemon's OpenAPI description to ``openapi-v3.json``. No token is written: requests
over TCP carry a fresh ``scontrol token``, which stays in this process.

    .venv/bin/python tests/slurm/capture_rest.py
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
OUT = HERE.parent.parent / "connectors-slurm" / "tests" / "data" / "rest"
LAB = Path(os.environ.get("EFI_SLURM_LAB", "/tmp/efi-slurm-lab"))
V = "v0.0.38"


def lab_env() -> dict[str, str]:
    env = dict(os.environ)
    for line in (LAB / "env.sh").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip("'\"")
    return env


def save(name: str, answer: httpx.Response) -> dict[str, Any]:
    record = {"status": answer.status_code,
              "content_type": answer.headers.get("content-type", ""),
              "body": answer.text}
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{name}: HTTP {answer.status_code}, {len(answer.content)} bytes")
    try:
        parsed = answer.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def script(body: str) -> str:
    return f"#!/bin/sh\n{body}\n"


def main() -> None:
    env = lab_env()
    OUT.mkdir(parents=True, exist_ok=True)
    scratch = env["EFI_SLURM_SCRATCH"]
    sock = httpx.Client(transport=httpx.HTTPTransport(uds=env["EFI_SLURM_REST_SOCKET"]),
                        base_url="http://slurmrestd", timeout=30)
    token = subprocess.run([str(HERE / "cluster.sh"), "token", "600"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    token = token.removeprefix("SLURM_JWT=")
    tcp = httpx.Client(base_url=env["EFI_SLURM_REST_URL"], timeout=30,
                       headers={"X-SLURM-USER-NAME": "efijm", "X-SLURM-USER-TOKEN": token})
    tag = uuid.uuid4().hex[:6]

    def job(name: str, body: str, **props: Any) -> dict[str, Any]:
        return {"script": script(body),
                "job": {"name": f"efi-capture-{tag}-{name}", "current_working_directory": scratch,
                        "standard_output": f"{scratch}/capture-%j.out",
                        "environment": {"PATH": "/usr/bin:/bin"}, **props}}

    answer = sock.get("/openapi/v3")
    (OUT / "openapi-v3.json").write_text(answer.text)
    save("ping", tcp.get(f"/slurm/{V}/ping"))
    save("ping-bad-token", tcp.get(f"/slurm/{V}/ping",
                                   headers={"X-SLURM-USER-TOKEN": token[:-4] + "AAAA"}))
    bad = {"X-SLURM-USER-TOKEN": token[:-4] + "AAAA"}
    save("jobs-bad-token", tcp.get(f"/slurm/{V}/jobs", headers=bad))
    save("db-jobs-bad-token", tcp.get(f"/slurmdb/{V}/jobs", params={"step": "1"}, headers=bad))
    save("ping-no-token", httpx.get(f"{env['EFI_SLURM_REST_URL']}/slurm/{V}/ping", timeout=30))
    save("query-not-parsed", tcp.get(f"/slurmdb/{V}/jobs", params={"start_time": "no-time"}))
    short = subprocess.run([str(HERE / "cluster.sh"), "token", "1"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    time.sleep(2.5)
    save("ping-expired-token", tcp.get(f"/slurm/{V}/ping", headers={
        "X-SLURM-USER-TOKEN": short.removeprefix("SLURM_JWT=")}))
    save("not-found-path", tcp.get(f"/slurm/{V}/nothing-here"))

    ids: dict[str, int] = {}
    for name, body, props in [
        ("held", "true", {"hold": True}),
        ("running", "sleep 120", {}),
        ("ok", "echo done", {}),
        ("exit3", "exit 3", {}),
        ("cancelled", "sleep 120", {}),
    ]:
        doc = save(f"submit-{name}", tcp.post(f"/slurm/{V}/job/submit",
                                              json=job(name, body, **props)))
        ids[name] = int(doc["job_id"])
    # slurmrestd 22.05 reads no #SBATCH line: this job gets no name, the default partition,
    # no time limit, and runs at once (see the jobs listing).
    lines = {"script": script(f"#SBATCH --job-name=efi-capture-{tag}-by-lines\n"
                              "#SBATCH --partition=efi\n#SBATCH --time=7\n#SBATCH --hold\ntrue"),
             "job": {"current_working_directory": scratch, "environment": {"PATH": "/bin"},
                     "standard_output": "/dev/null"}}
    ids["sbatch-lines"] = int(save("submit-sbatch-lines", tcp.post(
        f"/slurm/{V}/job/submit", json=lines))["job_id"])
    save("submit-bad-partition", tcp.post(f"/slurm/{V}/job/submit",
                                          json=job("bad", "true", partition="no-such-part")))
    save("submit-no-script", tcp.post(f"/slurm/{V}/job/submit", json={"job": {"name": "x"}}))
    time.sleep(3)
    save("cancel", tcp.delete(f"/slurm/{V}/job/{ids['cancelled']}"))
    save("cancel-unknown", tcp.delete(f"/slurm/{V}/job/999999999"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the short jobs have ended
        states = [j.get("job_state") for n in ("exit3", "ok")
                  for j in tcp.get(f"/slurm/{V}/job/{ids[n]}").json().get("jobs", [])]
        if all(s not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING") for s in states):
            break
        time.sleep(1)
    time.sleep(2)
    save("jobs", tcp.get(f"/slurm/{V}/jobs"))
    save("job-one", tcp.get(f"/slurm/{V}/job/{ids['exit3']}"))
    save("job-unknown", tcp.get(f"/slurm/{V}/job/999999999"))
    names = ",".join(f"efi-capture-{tag}-{n}" for n in ids if n != "sbatch-lines")
    save("db-jobs-by-name", tcp.get(f"/slurmdb/{V}/jobs", params={"job_name": names}))
    save("db-job-one", tcp.get(f"/slurmdb/{V}/job/{ids['exit3']}"))
    save("db-jobs-nothing", tcp.get(f"/slurmdb/{V}/jobs", params={"job_name": "efi-none-" + tag}))
    save("unix-ping", sock.get(f"/slurm/{V}/ping"))
    for name in ("held", "running"):
        tcp.delete(f"/slurm/{V}/job/{ids[name]}")
    print("ids:", ids)


if __name__ == "__main__":
    main()
