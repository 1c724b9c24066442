"""Test tools for connector authors and embedders: the contract suite, a site, a clock.

`ConnectorContract` is the connector contract as pytest tests: subclass it in a
connector package's tests with a ``make_connector`` fixture and every test runs against
that connector. `Site` is a throwaway EFI site (directories, a database with EFI-Web's
``Job`` table, managers running the stand-in pipeline) for end-to-end tests; `Clock` is
real time a test can push forward. This package needs pytest; the toolkit does not
import it. The manual is ``docs/connectors.md``.
"""

from efi_job_manager.testing.clock import Clock
from efi_job_manager.testing.contract import ConnectorContract, ContractJobs
from efi_job_manager.testing.site import FASTA, SSN, Site, fasta_job, make_site, run_until

__all__ = [
    "FASTA",
    "SSN",
    "Clock",
    "ConnectorContract",
    "ContractJobs",
    "Site",
    "fasta_job",
    "make_site",
    "run_until",
]
