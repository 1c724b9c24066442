"""The SQLAlchemy mapping of EFI-Web's ``Job`` table.

EFI-Web owns the table: this mapping reads and updates it, and never creates or
alters it in production (`efi_job_manager.schema.create_tables` is for
development and tests only). One row per user request; single-table
inheritance on ``job_type`` gives one class per job type (`JOB_CLASSES`).

Each column carries `ColumnMeta` in its ``info``: whether it is an input of the
job (which EST argument it feeds is the job type's business,
`efi_job_manager.catalogue.jobtypes`), and whether a result may write it (and from which
``stats.json`` key). The pipeline catalogue and the result reader use this
metadata; nothing else should need it.

A project with a different table can supply its own model module
(``[database] model = "package.module"``): a module whose ``Job`` attribute is
a mapped class with the columns in `REQUIRED_COLUMNS` and subclasses per job
type, see `load_job_model`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String, Text, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column
from sqlalchemy.sql.schema import Column

__all__ = [
    "JOB_CLASSES",
    "JOB_TYPES",
    "REQUIRED_COLUMNS",
    "ColumnMeta",
    "Job",
    "column_meta",
    "job_classes",
    "load_job_model",
    "parameter_columns",
    "result_columns",
    "updatable_columns",
]

_INFO_KEY = "efi"


@attrs.frozen
class ColumnMeta:
    """What the product knows about one column of the ``Job`` table.

    Attributes:
        parameter: The column is an input of the job's pipeline.
        updatable: A job's results may write this column.
        result_key: The ``stats.json`` key that fills this column, if EST writes one.

    """

    parameter: bool = False
    updatable: bool = False
    result_key: str | None = None


def _meta(**kwargs: Any) -> dict[str, Any]:
    return {_INFO_KEY: ColumnMeta(**kwargs)}


def _param() -> dict[str, Any]:
    return _meta(parameter=True)


def _result(key: str | None = None) -> dict[str, Any]:
    return _meta(updatable=True, result_key=key)


class Base(DeclarativeBase):
    """Declarative base of the shipped mapping."""


class Job(Base):
    """A row of EFI-Web's ``Job`` table (the columns every job type shares)."""

    __tablename__ = "Job"
    __table_args__ = (Index("ix_Job_status", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, info=_param())
    uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    user_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    timeCreated: Mapped[datetime | None] = mapped_column(DateTime)
    timeStarted: Mapped[datetime | None] = mapped_column(DateTime)
    timeCompleted: Mapped[datetime | None] = mapped_column(DateTime)
    efi_db_version: Mapped[str | None] = mapped_column(String(64), info=_param())
    jobName: Mapped[str | None] = mapped_column(String(255), info=_param())
    parentJob_id: Mapped[int | None] = mapped_column(Integer)
    isPublic: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    isExample: Mapped[bool | None] = mapped_column(Boolean)
    schedulerJobId: Mapped[int | None] = mapped_column(Integer)
    job_type: Mapped[str] = mapped_column(String(64), nullable=False)

    __mapper_args__ = {"polymorphic_on": "job_type", "polymorphic_identity": "job"}  # noqa: RUF012

    def __repr__(self) -> str:
        """Show the identifying columns only (never parameters, which may be long)."""
        return (f"<{type(self).__name__} id={self.id} job_type={self.job_type!r} "
                f"status={self.status!r} schedulerJobId={self.schedulerJobId}>")


# -- column groups shared by several job types (mixins) -------------------------------


class _AlignmentScore:
    alignmentScore: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())


class _SequenceLength:
    minLength: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())
    maxLength: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())


class _FamilyAddition:
    families: Mapped[str | None] = mapped_column(
        Text, use_existing_column=True, info=_param())
    sequence_version: Mapped[str | None] = mapped_column(
        String(16), use_existing_column=True, info=_param())
    fraction: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())
    numFamilyIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result())
    numFullFamilyIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_full_family"))
    numFamilyOverlapIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_shared_ids"))
    numFamilyUnirefOverlapIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result())
    numFractionFiltered: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_filter_fraction"))


class _DomainBoundaries:
    domain: Mapped[bool | None] = mapped_column(
        Boolean, use_existing_column=True, info=_param())
    domainRegion: Mapped[str | None] = mapped_column(
        String(32), use_existing_column=True, info=_param())


class _ExcludeFragments:
    excludeFragments: Mapped[bool | None] = mapped_column(
        Boolean, use_existing_column=True, info=_param())
    numFragmentFiltered: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_filter_fragment"))


class _FilterByTaxonomy:
    taxSearch: Mapped[str | None] = mapped_column(
        Text, use_existing_column=True, info=_param())
    taxSearchName: Mapped[str | None] = mapped_column(
        String(255), use_existing_column=True, info=_param())
    numTaxonomyFiltered: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_filter_taxonomy"))


class _FilterByFamilies:
    filterByFamilies: Mapped[str | None] = mapped_column(
        Text, use_existing_column=True, info=_param())
    numFamilyFiltered: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_filter_family"))


class _UserUploadedIds:
    numMatchedIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_matched"))
    numUnmatchedIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_unmatched"))


class _Filenames:
    uploadedFilename: Mapped[str | None] = mapped_column(
        String(255), use_existing_column=True, info=_param())
    jobFilename: Mapped[str | None] = mapped_column(
        String(255), use_existing_column=True, info=_param())
    updatedAt: Mapped[datetime | None] = mapped_column(DateTime, use_existing_column=True)


class _SequenceDatabase:
    blastEValue: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())
    maxBlastSequences: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())
    sequenceDatabase: Mapped[str | None] = mapped_column(
        String(32), use_existing_column=True, info=_param())


class _Search:
    searchType: Mapped[str | None] = mapped_column(
        String(32), use_existing_column=True, info=_param())


class _EstGenerate:
    allByAllBlastEValue: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())
    numComputedIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_unique_ids"))
    numImportedIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_ids"))
    outputConvergenceRatio: Mapped[float | None] = mapped_column(
        Float, use_existing_column=True, info=_result("convergence_ratio"))
    numBlastEdges: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_blast_edges"))


class _NeighborhoodSize:
    neighborhoodSize: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())


class _ColorSsn:
    numSsnClusters: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_ssn_clusters"))
    numSsnSingletons: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_ssn_singletons"))
    numSsnMetanodes: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_ssn_nodes"))
    numSsnAccessionIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_ssn_accession_ids"))
    colorSsnSequenceSoure: Mapped[str | None] = mapped_column(
        String(32), use_existing_column=True, info=_result("ssn_sequence_source"))


# -- one class per job_type -------------------------------------------------------------


class EstGenerateFastaJob(Job, _EstGenerate, _Filenames, _FamilyAddition, _UserUploadedIds,
                          _FilterByFamilies):
    """EST: an SSN from the sequences of an uploaded FASTA file."""

    __mapper_args__ = {"polymorphic_identity": "est_generate_fasta"}  # noqa: RUF012
    numFastaHeaders: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_headers"))


class EstGenerateFamiliesJob(Job, _EstGenerate, _DomainBoundaries, _ExcludeFragments,
                             _FilterByTaxonomy, _FamilyAddition):
    """EST: an SSN from Pfam/InterPro families."""

    __mapper_args__ = {"polymorphic_identity": "est_generate_families"}  # noqa: RUF012


class EstGenerateBlastJob(Job, _EstGenerate, _ExcludeFragments, _Filenames, _FilterByTaxonomy,
                          _FamilyAddition, _SequenceDatabase):
    """EST: an SSN from the BLAST neighbours of one query sequence."""

    __mapper_args__ = {"polymorphic_identity": "est_generate_blast"}  # noqa: RUF012
    numBlastUnmatchedIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_blast_unmatched"))
    numBlastRetrievedIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_blast_retr"))


class EstGenerateAccessionJob(Job, _EstGenerate, _DomainBoundaries, _ExcludeFragments, _Filenames,
                              _FilterByFamilies, _FilterByTaxonomy, _FamilyAddition,
                              _UserUploadedIds):
    """EST: an SSN from a list of UniProt accession ids."""

    __mapper_args__ = {"polymorphic_identity": "est_generate_accession"}  # noqa: RUF012
    domainFamily: Mapped[str | None] = mapped_column(
        String(32), use_existing_column=True, info=_param())
    numForeignIds: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_result("num_foreign"))


class EstSsnFinalizationJob(Job, _AlignmentScore, _ExcludeFragments, _FilterByTaxonomy,
                            _SequenceLength):
    """EST: the SSN of a finished generate job at an alignment score."""

    __mapper_args__ = {"polymorphic_identity": "est_ssn_finalization"}  # noqa: RUF012
    computeNeighborhoodConnectivity: Mapped[bool | None] = mapped_column(
        Boolean, use_existing_column=True, info=_param())
    resultFileStats: Mapped[str | None] = mapped_column(
        Text, use_existing_column=True, info=_result())


class EstNeighborhoodConnectivityJob(Job, _Filenames):
    """EST: neighbourhood connectivity of an uploaded SSN."""

    __mapper_args__ = {"polymorphic_identity": "est_neighborhood_connectivity"}  # noqa: RUF012


class EstConvergenceRatioJob(Job, _AlignmentScore, _Filenames):
    """EST: convergence ratio of the clusters of an uploaded SSN."""

    __mapper_args__ = {"polymorphic_identity": "est_convergence_ratio"}  # noqa: RUF012


class EstClusterAnalysisJob(Job, _ColorSsn, _Filenames):
    """EST: MSAs, HMMs, weblogos and length histograms per cluster of an uploaded SSN."""

    __mapper_args__ = {"polymorphic_identity": "est_cluster_analysis"}  # noqa: RUF012
    minNumSequences: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())
    maxNumSequences: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())
    makeWeblogo: Mapped[bool | None] = mapped_column(
        Boolean, use_existing_column=True, info=_param())
    computeConsensusResidues: Mapped[bool | None] = mapped_column(
        Boolean, use_existing_column=True, info=_param())
    consensusResidues: Mapped[str | None] = mapped_column(
        String(255), use_existing_column=True, info=_param())
    pidThresholds: Mapped[str | None] = mapped_column(
        String(255), use_existing_column=True, info=_param())
    makeHmms: Mapped[bool | None] = mapped_column(
        Boolean, use_existing_column=True, info=_param())
    makeLengthHistograms: Mapped[bool | None] = mapped_column(
        Boolean, use_existing_column=True, info=_param())


class EstColorSsnJob(Job, _Filenames, _ColorSsn):
    """EST: colour the clusters of an uploaded SSN."""

    __mapper_args__ = {"polymorphic_identity": "est_color_ssn"}  # noqa: RUF012


class GntGnnJob(Job, _Filenames, _NeighborhoodSize):
    """GNT: genome neighbourhood networks of an uploaded SSN."""

    __mapper_args__ = {"polymorphic_identity": "gnt_gnn"}  # noqa: RUF012
    cooccurrence: Mapped[float | None] = mapped_column(
        Float, use_existing_column=True, info=_param())
    neighborhood_size: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())


class GntDiagramBlastJob(Job, _ExcludeFragments, _Filenames, _NeighborhoodSize,
                         _SequenceDatabase):
    """GNT: genome neighbourhood diagrams of the BLAST neighbours of a sequence."""

    __mapper_args__ = {"polymorphic_identity": "gnt_diagram_blast"}  # noqa: RUF012


class GntDiagramFastaJob(Job, _Filenames, _NeighborhoodSize):
    """GNT: genome neighbourhood diagrams of the sequences of a FASTA file."""

    __mapper_args__ = {"polymorphic_identity": "gnt_diagram_fasta"}  # noqa: RUF012


class GntDiagramSequenceIdJob(Job, _ExcludeFragments, _Filenames, _NeighborhoodSize,
                              _SequenceDatabase):
    """GNT: genome neighbourhood diagrams of a list of sequence ids."""

    __mapper_args__ = {"polymorphic_identity": "gnt_diagram_sequence_id"}  # noqa: RUF012


class GntViewDiagramJob(Job, _Filenames):
    """GNT: view an uploaded diagram file (no pipeline run)."""

    __mapper_args__ = {"polymorphic_identity": "gnt_view_diagram"}  # noqa: RUF012


class CgfpIdentifyJob(Job, _Filenames, _Search, _SequenceLength):
    """CGFP: identify ShortBRED markers for the clusters of an SSN."""

    __mapper_args__ = {"polymorphic_identity": "cgfp_identify"}  # noqa: RUF012
    referenceDatabase: Mapped[str | None] = mapped_column(
        String(32), use_existing_column=True, info=_param())
    cdhitSequenceIdentity: Mapped[int | None] = mapped_column(
        Integer, use_existing_column=True, info=_param())


class CgfpQuantifyJob(Job, _Search):
    """CGFP: quantify the markers of an identify job in metagenomes."""

    __mapper_args__ = {"polymorphic_identity": "cgfp_quantify"}  # noqa: RUF012
    metagenomes: Mapped[str | None] = mapped_column(
        Text, use_existing_column=True, info=_param())


class TaxonomyAccessionJob(Job, _ExcludeFragments, _Filenames, _FilterByFamilies,
                           _FilterByTaxonomy):
    """Taxonomy of a list of accession ids."""

    __mapper_args__ = {"polymorphic_identity": "taxonomy_accession"}  # noqa: RUF012
    sequence_version: Mapped[str | None] = mapped_column(
        String(16), use_existing_column=True, info=_param())


class TaxonomyFamiliesJob(Job, _ExcludeFragments, _FilterByTaxonomy, _FilterByFamilies,
                          _SequenceLength):
    """Taxonomy of Pfam/InterPro families."""

    __mapper_args__ = {"polymorphic_identity": "taxonomy_families"}  # noqa: RUF012


class TaxonomyFastaJob(Job, _ExcludeFragments, _Filenames):
    """Taxonomy of the sequences of a FASTA file."""

    __mapper_args__ = {"polymorphic_identity": "taxonomy_fasta"}  # noqa: RUF012


#: Columns a model module must map for the repository to work.
REQUIRED_COLUMNS = (
    "id", "status", "job_type", "schedulerJobId", "timeCreated", "timeStarted", "timeCompleted",
    "user_id",
)


def job_classes(base: type[Job] = Job) -> Mapping[str, type[Job]]:
    """Return ``job_type → mapped class`` for every job type of a model (the base excluded)."""
    mapper = inspect(base)
    return {
        identity: m.class_
        for identity, m in mapper.polymorphic_map.items()
        if m.class_ is not base and isinstance(identity, str)
    }


#: The 19 job types of EFI-Web and their classes in the shipped model.
JOB_CLASSES: Mapping[str, type[Job]] = job_classes(Job)
#: The job types of the shipped model, sorted.
JOB_TYPES: tuple[str, ...] = tuple(sorted(JOB_CLASSES))


def column_meta(column: Column[Any]) -> ColumnMeta:
    """Return the `ColumnMeta` of a column (an empty one for columns without)."""
    meta = column.info.get(_INFO_KEY)
    return meta if isinstance(meta, ColumnMeta) else ColumnMeta()


def _columns(cls: type[Job]) -> list[Column[Any]]:
    return [c for c in inspect(cls).columns if isinstance(c, Column)]


def parameter_columns(cls: type[Job]) -> dict[str, ColumnMeta]:
    """Return ``column name → meta`` for the pipeline-parameter columns of a job class."""
    return {c.name: m for c in _columns(cls) if (m := column_meta(c)).parameter}


def updatable_columns(cls: type[Job]) -> dict[str, ColumnMeta]:
    """Return ``column name → meta`` for the columns a job's results may write."""
    return {c.name: m for c in _columns(cls) if (m := column_meta(c)).updatable}


def result_columns(cls: type[Job]) -> dict[str, str]:
    """Return ``stats.json key → column name`` for a job class."""
    return {m.result_key: name for name, m in updatable_columns(cls).items() if m.result_key}


class ModelError(ValueError):
    """A model module that cannot be used (missing, or without the required columns)."""


def load_job_model(dotted: str | None) -> type[Job]:
    """Return the ``Job`` base class of a model module, or the shipped one for None.

    Args:
        dotted: An importable module path whose ``Job`` attribute is the mapped
            base class of the ``Job`` table, with one subclass per job type
            (``polymorphic_identity`` = the ``job_type`` string).

    Raises:
        ModelError: the module cannot be imported, has no ``Job`` class, or the
            class lacks a column in `REQUIRED_COLUMNS`.

    """
    if dotted is None:
        return Job
    try:
        module = importlib.import_module(dotted)
    except ImportError as exc:
        raise ModelError(f"database.model = {dotted!r}: cannot import it: {exc}") from exc
    base = getattr(module, "Job", None)
    if not isinstance(base, type):
        raise ModelError(f"database.model = {dotted!r}: the module has no class named Job")
    try:
        mapper: Mapper[Any] = inspect(base)
    except Exception as exc:
        raise ModelError(f"database.model = {dotted!r}: Job is not a mapped class: {exc}") from exc
    columns = {str(column.key) for column in mapper.columns}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ModelError(f"database.model = {dotted!r}: Job lacks the columns {', '.join(missing)}")
    return base
