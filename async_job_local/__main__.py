"""``python -m async_job_local`` runs the ``async-job`` command."""

import sys

from async_job_local.cli import main

sys.exit(main())
