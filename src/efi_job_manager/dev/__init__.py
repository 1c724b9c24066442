"""Development tools shipped with the package: the demo and the stand-in for EST's pipelines.

Neither is used by the manager in production: ``efi-job-manager demo`` runs `demo`, and
a site without Nextflow or the EFI databases (tests, the demo) runs
``python -m efi_job_manager.dev.standin`` instead of EST's pipelines.
"""
