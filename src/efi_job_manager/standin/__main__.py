"""``python -m efi_job_manager.standin``: the stand-in pipeline's command."""

import sys

from efi_job_manager.standin.command import main

sys.exit(main())
