"""``python -m efi_job_manager.dev.standin``: the stand-in pipeline's command."""

import sys

from efi_job_manager.dev.standin.command import main

sys.exit(main())
