"""The slurm connector of efi-job-manager."""
