"""``python -m efi_job_manager.cli``: the ``efi-job-manager`` command."""

import sys

from efi_job_manager.cli import main

sys.exit(main())
