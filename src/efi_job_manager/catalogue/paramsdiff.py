"""A params file written by EST's own script, compared with what a job gets.

A site checks the product against its EST installation by running the EST command
`efi-job-manager jobs params ID` prints and passing the file it writes to
``--diff``. The file is compared with what EST's script writes for the job's call
(`PreparedJob.est_params`): keys, values and JSON types must be equal, with the
file's job directory read as the job's (EST ran it elsewhere) and EST's run-script
keys ignored. What the product adds for the site (pipeline parameters EST's script
has no option for, overrides) is listed apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from efi_job_manager.catalogue.core import PreparedJob
from efi_job_manager.catalogue.estscripts import RUNNER_KEYS
from efi_job_manager.jobfiles import relocate_params

__all__ = ["ParamsDiff", "compare"]


@attrs.frozen
class ParamsDiff:
    """How a params file differs from what EST's script writes for a job.

    Attributes:
        only_in_file: Keys the file has and the job's EST call does not write.
        only_in_job: Keys the job's EST call writes and the file lacks.
        different: ``key → (job's value, file's value)`` where value or JSON type differ.
        ignored: EST's run-script keys found in the file (read by no pipeline).
        added: ``key → value`` the product adds to EST's parameters for this site.
        removed: Keys of EST's parameters this site's overrides remove.

    """

    only_in_file: Mapping[str, Any]
    only_in_job: Mapping[str, Any]
    different: Mapping[str, tuple[Any, Any]]
    ignored: tuple[str, ...]
    added: Mapping[str, Any]
    removed: tuple[str, ...] = ()

    @property
    def equal(self) -> bool:
        """Return whether the file is what EST's script writes for the job."""
        return not (self.only_in_file or self.only_in_job or self.different)

    def lines(self) -> list[str]:
        """Return the comparison as lines for people."""
        out = [f"  only in the file: {k} = {_shown(v)}" for k, v in self.only_in_file.items()]
        out += [f"  missing from the file: {k} = {_shown(v)}" for k, v in
                self.only_in_job.items()]
        out += [f"  {k}: job {_shown(ours)}, file {_shown(theirs)}" for k, (ours, theirs) in
                self.different.items()]
        if self.ignored:
            out.append(f"  ignored (EST's run-script keys): {', '.join(self.ignored)}")
        out += [f"  added by this site: {k} = {_shown(v)}" for k, v in self.added.items()]
        out += [f"  removed by this site: {k}" for k in self.removed]
        return out


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def compare(prepared: PreparedJob, file_params: Mapping[str, Any]) -> ParamsDiff:
    """Compare a params file written by EST's script with the job's EST parameters."""
    est = dict(prepared.est_params)
    theirs = {k: v for k, v in file_params.items() if k not in RUNNER_KEYS}
    their_dir = theirs.get("final_output_dir")
    our_dir = est.get("final_output_dir")
    if isinstance(their_dir, str) and isinstance(our_dir, str) and their_dir != our_dir:
        theirs = relocate_params(theirs, their_dir, our_dir)
    different = {k: (est[k], theirs[k]) for k in sorted(est.keys() & theirs.keys())
                 if _shown(est[k]) != _shown(theirs[k])}
    added = {k: v for k, v in sorted(prepared.params.items())
             if k not in est or _shown(est[k]) != _shown(v)}
    return ParamsDiff(
        only_in_file={k: theirs[k] for k in sorted(theirs.keys() - est.keys())},
        only_in_job={k: est[k] for k in sorted(est.keys() - theirs.keys())},
        different=different,
        ignored=tuple(sorted(file_params.keys() & RUNNER_KEYS)),
        added=added, removed=tuple(sorted(est.keys() - prepared.params.keys())))
