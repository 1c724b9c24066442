"""The catalogue: a ``Job`` row → the parameters, files and command its EST pipeline runs with.

`Catalogue` (``core.py``) prepares a row; ``site.py`` checks the ``[pipelines]`` settings;
the data are ``jobtypes.py`` (each job type as a call of EST's script) and ``estscripts.py``
(EST's ``bin/create_*_nextflow_params.py`` declared); ``builds.py``, ``estcalls.py``,
``filters.py``, ``rowvalues.py`` and ``staging.py`` are the code that reads a row and renders
the call; ``paramsdiff.py`` compares a params file EST wrote with what a job gets.
"""

from efi_job_manager.catalogue.core import (
    DEFAULT_COMMAND,
    STANDIN_COMMAND,
    Catalogue,
    CatalogueError,
    EfiDatabases,
    JobInputError,
    PreparedJob,
    SiteNeeds,
)

__all__ = [
    "DEFAULT_COMMAND",
    "STANDIN_COMMAND",
    "Catalogue",
    "CatalogueError",
    "EfiDatabases",
    "JobInputError",
    "PreparedJob",
    "SiteNeeds",
]
