"""efi-job-manager: runs EFI-Web's jobs on HPC clusters through pluggable connectors."""
