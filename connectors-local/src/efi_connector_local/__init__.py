"""The local connector of efi-job-manager."""
