"""Slurm's REST API (``slurmrestd``): the HTTP client and what its JSON answers mean."""

from efi_connector_slurm.rest.client import API_VERSION, RestAnswer, RestClient, TokenSource

__all__ = ["API_VERSION", "RestAnswer", "RestClient", "TokenSource"]
