"""Tests of `efi_job_manager.config`: the TOML file, environment overrides and errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from efi_job_manager import discovery
from efi_job_manager.cli import main
from efi_job_manager.config import (
    LEGACY_SETTINGS,
    ConfigError,
    DatabaseSettings,
    DestinationSettings,
    Problem,
    Settings,
    parse_duration,
)
from efi_job_manager.discovery import load_connectors
from efi_job_manager.manager import JobManager

SKETCH = (
    """\
[database]
url = "mysql+pymysql://efi@db.example.org/efi_web"   # password: EFI_JOB_MANAGER_DATABASE__PASSWORD

[manager]
interval = "30s"
results_dir = "/srv/efi/results"
input_dir = "/srv/efi/uploads"
max_running_jobs = 200
max_running_jobs_per_user = 20

[destinations.default]
connector = "slurm"
[destinations.default.settings]
transport = "ssh"
host = "login.cluster.example.org"
user = "efi"
remote_dir = "/scratch/efi/jobs"
env_setup = "module load slurm nextflow"
partition = "efi"
[destinations.default.settings.profiles.est_generate_blast]
cpus = 2
memory = "32G"
time = "24:00:00"

[destinations.bigmem]
connector = "slurm"
"""
    'settings = { transport = "ssh", host = "login.cluster.example.org", user = "efi", '
    'remote_dir = "/scratch/efi/jobs", partition = "efi-mem" }\n'
    """
[routing]
cgfp_quantify = "bigmem"

[pipelines]
nextflow = "nextflow"
pipeline_dir = "/opt/EST/pipelines"
config_dir = "/opt/EST/conf"
"""
    'params = { efi_config = "/opt/EST/efi.config", fasta_db = "/db/uniprot", '
    'duckdb_temp_dir = "/scratch/duckdb" }\n'
    """
[pipelines.efi_db]
default = "efi_202406"
template = "efi_{efi_db_version}"
versions = { "2025_04" = "efi_202504" }

[notify.email]
smtp = "smtp.example.org:587"
sender = "efi-jobs@example.org"
"""
)

SECRET = "s3cr3t-Pa55"

WriteConfig = Callable[[str], Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write a TOML text to ``efi-job-manager.toml`` in a temporary directory."""

    def write(text: str) -> Path:
        path = tmp_path / "conf" / "efi-job-manager.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


def load_text(write_config: WriteConfig, text: str, **environ: str) -> Settings:
    return Settings.load(write_config(text), environ=environ)


def error_of(write_config: WriteConfig, text: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(write_config, text, **environ)
    return str(caught.value)


# --------------------------------------------------------------------------- loading


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No path and no EFI_JOB_MANAGER_CONFIG: built-in defaults, paths under the cwd."""
    monkeypatch.chdir(tmp_path)
    settings = Settings.load(environ={})
    assert settings.config_file is None
    assert settings.database.url == "sqlite:///efi-jobs.sqlite"
    assert settings.database.password is None
    assert settings.manager.interval == 30.0
    assert settings.manager.max_running_jobs == 100
    assert settings.manager.cancel_window == 7 * 24 * 3600
    assert settings.manager.results_dir == tmp_path / "results"
    assert settings.manager.input_dir == tmp_path / "uploads"
    assert settings.destinations == {"default": DestinationSettings(connector="local")}
    assert settings.routing == {}
    assert settings.pipelines.command is None
    assert settings.notify.email is None
    assert settings.log_level == "INFO"


def test_config_env_names_the_file(write_config: WriteConfig) -> None:
    """Without a path, the file named by EFI_JOB_MANAGER_CONFIG is read."""
    path = write_config("[manager]\nmax_running_jobs = 7\n")
    settings = Settings.load(environ={"EFI_JOB_MANAGER_CONFIG": str(path)})
    assert settings.manager.max_running_jobs == 7
    assert settings.config_file == path


def test_the_design_sketch_loads(write_config: WriteConfig) -> None:
    """The site file sketched in DESIGN.md §6 loads with every value in place."""
    settings = load_text(write_config, SKETCH)
    assert settings.database.url == "mysql+pymysql://efi@db.example.org/efi_web"
    assert settings.manager.interval == 30.0
    assert settings.manager.results_dir == Path("/srv/efi/results")
    assert settings.manager.max_running_jobs == 200
    assert settings.manager.max_running_jobs_per_user == 20
    default = settings.destinations["default"]
    assert default.connector == "slurm"
    assert default.settings["partition"] == "efi"
    assert default.settings["profiles"] == {
        "est_generate_blast": {"cpus": 2, "memory": "32G", "time": "24:00:00"}
    }
    assert settings.destinations["bigmem"].settings["partition"] == "efi-mem"
    assert settings.routing == {"cgfp_quantify": "bigmem"}
    assert settings.destination_for("cgfp_quantify") == "bigmem"
    assert settings.destination_for("est_generate_blast") == "default"
    assert settings.pipelines.pipeline_dir == Path("/opt/EST/pipelines")
    assert settings.pipelines.params["fasta_db"] == "/db/uniprot"
    assert settings.pipelines.efi_db.default == "efi_202406"
    assert settings.pipelines.efi_db.template == "efi_{efi_db_version}"
    assert dict(settings.pipelines.efi_db.versions) == {"2025_04": "efi_202504"}
    assert settings.notify.email is not None
    assert settings.notify.email.host == "smtp.example.org"
    assert settings.notify.email.port == 587


def test_config_env_is_not_an_override(write_config: WriteConfig) -> None:
    """EFI_JOB_MANAGER_CONFIG is not read as an unknown ``config`` key."""
    path = write_config("")
    settings = Settings.load(path, environ={"EFI_JOB_MANAGER_CONFIG": "/nowhere.toml"})
    assert settings.config_file == path


def test_from_mapping_does_not_modify_its_input() -> None:
    """from_mapping copies the mapping before applying environment overrides."""
    data = {"destinations": {"default": {"connector": "slurm", "settings": {"a": 1}}}}
    Settings.from_mapping(data, environ={"EFI_JOB_MANAGER_DESTINATIONS__DEFAULT__SETTINGS__A": "2"})
    assert data == {"destinations": {"default": {"connector": "slurm", "settings": {"a": 1}}}}


def test_legacy_settings_all_have_a_home() -> None:
    """The first job manager's settings named in the design map onto dotted keys here."""
    for old in ("DATABASE_URI", "EXECUTION_CONNECTOR", "LOCAL_JOB_DIRECTORY", "SOURCE_ENV_CMD"):
        assert old in LEGACY_SETTINGS
    assert LEGACY_SETTINGS["MAX_NUM_RUNNING_JOB"] == "manager.max_running_jobs"
    assert LEGACY_SETTINGS["NEXTFLOW_PARAMS"] == "pipelines.params"


#: Every name EFI's first job manager reads from its settings module: config/settings.py of
#: EnzymeFunctionInitiative/job_manager (173db83) and its API connector's API_* names.
FIRST_MANAGER_SETTINGS = (
    "EXECUTION_CONNECTOR", "DRY_RUN", "LOGGING", "LOG_FILE_PATH", "DATABASE_URI",
    "LOCAL_JOB_DIRECTORY", "LOCAL_INPUT_FILE_SOURCE_DIR", "HPC_HOSTNAME", "HPC_USERNAME",
    "HPC_SSH_KEY_PATH", "REMOTE_JOB_DIRECTORY", "PARTITION", "REMOTE_NEXTFLOW_PATH",
    "REMOTE_NEXTFLOW_CONFIG_PATH", "REMOTE_NEXTFLOW_PIPELINE_DIR", "EMAIL_HOST", "EMAIL_PORT",
    "EMAIL_USE_TLS", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_SENDER",
    "NEXTFLOW_PARAMS", "API_BASE_URL", "API_UPLOAD_HOOK", "API_DOWNLOAD_HOOK", "API_LS_HOOK",
    "API_SUBMIT_HOOK", "API_CHECK_STATUS_HOOK", "API_HEADER",
)


def test_every_first_manager_setting_has_a_home_or_a_reason(write_config: WriteConfig) -> None:
    """Each old name used in a file is an error naming a real key here, or why it is gone."""
    from efi_job_manager.config.legacy import GONE_SETTINGS

    settings_doc = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    operator_doc = (Path(__file__).parents[1] / "docs" / "operator.md").read_text()
    for old in FIRST_MANAGER_SETTINGS:
        assert (old in LEGACY_SETTINGS) != (old in GONE_SETTINGS), old
        assert f"`{old}`" in operator_doc, old
        with pytest.raises(ConfigError) as caught:
            Settings.load(write_config(f"{old} = 1\n"), environ={})
        message = str(caught.value)
        if old in GONE_SETTINGS:
            assert "gone" in message, message
            continue
        home = LEGACY_SETTINGS[old]
        assert (home if old != "EXECUTION_CONNECTOR" else 'connector = "slurm"') in message
        assert f"`{home.replace('.default.', '.<name>.')}`" in settings_doc, home


# --------------------------------------------------------------------------- environment


def test_env_overrides_nested_keys(write_config: WriteConfig) -> None:
    """EFI_JOB_MANAGER_<SECTION>__<KEY> overrides a key of the file, converted to its type."""
    settings = load_text(
        write_config,
        SKETCH,
        EFI_JOB_MANAGER_DATABASE__URL="postgresql://efi@db/efi",
        EFI_JOB_MANAGER_MANAGER__MAX_RUNNING_JOBS="5",
        EFI_JOB_MANAGER_MANAGER__DRY_RUN="yes",
        EFI_JOB_MANAGER_MANAGER__INTERVAL="1m30s",
        EFI_JOB_MANAGER_LOG_LEVEL="debug",
    )
    assert settings.database.url == "postgresql://efi@db/efi"
    assert settings.manager.max_running_jobs == 5
    assert settings.manager.dry_run is True
    assert settings.manager.interval == 90.0
    assert settings.log_level == "DEBUG"
    assert settings.manager.max_running_jobs_per_user == 20


def test_env_overrides_a_destination_setting(write_config: WriteConfig) -> None:
    """A destination setting from the environment: TOML values parsed, other text verbatim."""
    settings = load_text(
        write_config,
        SKETCH,
        EFI_JOB_MANAGER_DESTINATIONS__DEFAULT__SETTINGS__PARTITION="efi-gpu",
        EFI_JOB_MANAGER_DESTINATIONS__DEFAULT__SETTINGS__PORT="2222",
        EFI_JOB_MANAGER_DESTINATIONS__DEFAULT__SETTINGS__STRICT="true",
        EFI_JOB_MANAGER_DESTINATIONS__DEFAULT__SETTINGS__QUOTED='"42"',
        EFI_JOB_MANAGER_DESTINATIONS__BIGMEM__SETTINGS__ENV_SETUP="module load x; echo 'y'",
    )
    default = settings.destinations["default"].settings
    assert default["partition"] == "efi-gpu"
    assert default["port"] == 2222
    assert default["strict"] is True
    assert default["quoted"] == "42"
    assert default["profiles"]["est_generate_blast"]["cpus"] == 2
    assert settings.destinations["bigmem"].settings["env_setup"] == "module load x; echo 'y'"


def test_env_matches_existing_keys_ignoring_case(write_config: WriteConfig) -> None:
    """An environment name reaches a mixed-case destination of the file."""
    text = (
        '[destinations.default]\nconnector = "local"\n[destinations.BigMem]\nconnector = "slurm"\n'
    )
    settings = load_text(
        write_config, text, EFI_JOB_MANAGER_DESTINATIONS__BIGMEM__MAX_RUNNING_JOBS="3"
    )
    assert settings.destinations["BigMem"].max_running_jobs == 3


def test_env_adds_a_destination_to_the_default_one() -> None:
    """Without [destinations], the environment can add one next to the local default."""
    settings = Settings.from_mapping(
        {"routing": {"cgfp_quantify": "bigmem"}},
        environ={"EFI_JOB_MANAGER_DESTINATIONS__BIGMEM__CONNECTOR": "slurm"},
    )
    assert settings.destinations["default"].connector == "local"
    assert settings.destinations["bigmem"].connector == "slurm"


def test_empty_env_value_unsets_an_optional_key(write_config: WriteConfig) -> None:
    """An empty value for an optional key means "not set"."""
    settings = load_text(
        write_config, SKETCH, EFI_JOB_MANAGER_MANAGER__MAX_RUNNING_JOBS_PER_USER=""
    )
    assert settings.manager.max_running_jobs_per_user is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("On", True), ("no", False), ("0", False), ("FALSE", False)],
)
def test_env_booleans(text: str, expected: bool) -> None:
    """Booleans from the environment accept true/false, 1/0, yes/no, on/off."""
    settings = Settings.from_mapping({}, environ={"EFI_JOB_MANAGER_DATABASE__ECHO": text})
    assert settings.database.echo is expected


def test_env_lists(write_config: WriteConfig) -> None:
    """A list from the environment is a TOML array, or comma / shell separated text."""
    text = '[notify.email]\nsmtp = "mail:25"\nsender = "efi@example.org"\n'
    settings = load_text(
        write_config,
        text,
        EFI_JOB_MANAGER_NOTIFY__EMAIL__RECIPIENTS="a@example.org, b@example.org",
        EFI_JOB_MANAGER_PIPELINES__COMMAND='nextflow run "{pipeline}" -params-file params.json',
    )
    assert settings.notify.email is not None
    assert settings.notify.email.recipients == ("a@example.org", "b@example.org")
    assert settings.pipelines.command == (
        "nextflow",
        "run",
        "{pipeline}",
        "-params-file",
        "params.json",
    )
    settings = load_text(write_config, text, EFI_JOB_MANAGER_PIPELINES__COMMAND='["a b", "c"]')
    assert settings.pipelines.command == ("a b", "c")


def test_file_strings_are_not_numbers(write_config: WriteConfig) -> None:
    """In the file a number must be a TOML number; only the environment converts text."""
    message = error_of(write_config, '[manager]\nclaim_batch = "10"\n')
    assert 'manager.claim_batch = "10": expected an integer >= 1' in message


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("30", 30.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1h 30m 15s", 5415.0),
        ("1.5h", 5400.0),
        ("7d", 604800.0),
        ("0", 0.0),
    ],
)
def test_parse_duration(value: str | float, seconds: float) -> None:
    """Durations are seconds, or number-unit pairs in ms, s, m, h, d."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "5 parsecs", "m5", "-3s", "-1", "inf", "1h-5m"])
def test_parse_duration_refuses_nonsense(value: str) -> None:
    """Anything else, negative or infinite durations included, is a ValueError."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_parse_duration_refuses_booleans() -> None:
    """A boolean is not a number of seconds."""
    with pytest.raises(TypeError):
        parse_duration(True)


def test_durations_in_the_file(write_config: WriteConfig) -> None:
    """Duration keys take numbers or strings in the file."""
    text = '[manager]\ninterval = 5\nsubmit_grace = "10m"\nlost_grace = 90\ncancel_window = "2d"\n'
    manager = load_text(write_config, text).manager
    assert (manager.interval, manager.submit_grace) == (5.0, 600.0)
    assert (manager.lost_grace, manager.cancel_window) == (90.0, 172800.0)


def test_interval_must_be_positive(write_config: WriteConfig) -> None:
    """A zero interval would spin: it is refused."""
    message = error_of(write_config, '[manager]\ninterval = "0s"\n')
    assert 'manager.interval = "0s": expected a duration > 0' in message


# --------------------------------------------------------------------------- errors


def test_wrong_type_names_source_key_value_and_expectation(write_config: WriteConfig) -> None:
    """A wrong value names the file, the dotted key, the value and what was expected."""
    path = write_config('[manager]\nmax_running_jobs = "ten"\n')
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, environ={})
    assert (
        str(caught.value) == f'{path}: manager.max_running_jobs = "ten": expected an integer >= 1'
    )


def test_wrong_env_value_names_the_variable(write_config: WriteConfig) -> None:
    """A wrong value from the environment names the variable, not the file."""
    message = error_of(write_config, "", EFI_JOB_MANAGER_MANAGER__MAX_RUNNING_JOBS="ten")
    assert message == (
        'EFI_JOB_MANAGER_MANAGER__MAX_RUNNING_JOBS: manager.max_running_jobs = "ten": '
        "expected an integer >= 1"
    )


def test_wrong_type_deep_in_a_destination(write_config: WriteConfig) -> None:
    """Keys of destinations are named with their full dotted path."""
    text = '[destinations.default]\nconnector = "slurm"\nmax_running_jobs = 0\n'
    message = error_of(write_config, text)
    assert "destinations.default.max_running_jobs = 0: expected an integer >= 1" in message


def test_unknown_key_suggests_the_close_one(write_config: WriteConfig) -> None:
    """A misspelt key is refused, with the known key it most resembles."""
    message = error_of(write_config, "[manager]\nmax_runing_jobs = 10\n")
    assert "unknown key manager.max_runing_jobs" in message
    assert "did you mean manager.max_running_jobs?" in message


def test_unknown_section_is_an_error(write_config: WriteConfig) -> None:
    """An unknown top-level table is refused."""
    message = error_of(write_config, '[connectors.slurm]\npartition = "efi"\n')
    assert "unknown key connectors" in message
    assert "destinations" in message


def test_legacy_key_names_its_new_home(write_config: WriteConfig) -> None:
    """A setting of the first job manager at the top level points to its new key."""
    message = error_of(write_config, 'DATABASE_URI = "sqlite:///x.db"\n')
    assert "unknown key DATABASE_URI" in message
    assert "database.url" in message


def test_unknown_env_variable_is_an_error(write_config: WriteConfig) -> None:
    """An EFI_JOB_MANAGER_* variable naming no setting is refused like a key of the file."""
    message = error_of(write_config, "", EFI_JOB_MANAGER_MANAGER__INTERVALL="5s")
    assert message.startswith("EFI_JOB_MANAGER_MANAGER__INTERVALL: unknown key manager.intervall")
    assert "did you mean manager.interval?" in message


def test_single_underscore_env_variable_gets_a_hint(write_config: WriteConfig) -> None:
    """EFI_JOB_MANAGER_DATABASE_PASSWORD is refused with the double-underscore spelling."""
    message = error_of(write_config, "", EFI_JOB_MANAGER_DATABASE_PASSWORD=SECRET)
    assert "EFI_JOB_MANAGER_DATABASE__PASSWORD" in message
    assert SECRET not in message


def test_routing_to_a_missing_destination(write_config: WriteConfig) -> None:
    """Routing a job type to a destination that does not exist names the routing key."""
    message = error_of(write_config, '[routing]\ncgfp_quantify = "bigmen"\n')
    assert 'routing.cgfp_quantify = "bigmen"' in message
    assert "configured destination (default)" in message


def test_missing_default_destination(write_config: WriteConfig) -> None:
    """Destinations without one named "default" need manager.default_destination."""
    text = '[destinations.cluster]\nconnector = "slurm"\n'
    message = error_of(write_config, text)
    assert 'no destination named "default"' in message
    assert "manager.default_destination" in message
    settings = load_text(write_config, '[manager]\ndefault_destination = "cluster"\n' + text)
    assert settings.destination_for("anything") == "cluster"


def test_default_destination_must_exist(write_config: WriteConfig) -> None:
    """manager.default_destination naming no destination is refused."""
    message = error_of(write_config, '[manager]\ndefault_destination = "cluster"\n')
    assert 'manager.default_destination = "cluster": expected the name of a configured' in message


def test_destination_needs_a_connector(write_config: WriteConfig) -> None:
    """A destination without a connector is refused."""
    message = error_of(write_config, '[destinations.default]\nsettings = { partition = "x" }\n')
    assert "destinations.default.connector is required" in message


def test_invalid_toml(write_config: WriteConfig) -> None:
    """A file that is not TOML gives a ConfigError with tomllib's message."""
    path = write_config("[manager\ninterval = 5\n")
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 1") as caught:
        Settings.load(path, environ={})
    assert str(caught.value).startswith(str(path))


def test_explicit_missing_file(tmp_path: Path) -> None:
    """A file named explicitly must exist."""
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match="configuration file not found"):
        Settings.load(path, environ={})


def test_missing_file_named_by_env(tmp_path: Path) -> None:
    """A missing file named by EFI_JOB_MANAGER_CONFIG says the variable named it."""
    environ = {"EFI_JOB_MANAGER_CONFIG": str(tmp_path / "nowhere.toml")}
    with pytest.raises(ConfigError, match=r"^EFI_JOB_MANAGER_CONFIG: .*not found"):
        Settings.load(environ=environ)


def test_config_error_is_a_value_error() -> None:
    """Callers may catch ConfigError as ValueError."""
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------- secrets


def test_password_never_in_repr(write_config: WriteConfig) -> None:
    """Neither the password key nor a password in the URL appears in repr or str."""
    text = f'[database]\nurl = "postgresql://efi:{SECRET}@db/efi"\n'
    text += f'[notify.email]\nsmtp = "m:25"\nsender = "a@b"\npassword = "{SECRET}"\n'
    text += f'[destinations.default]\nconnector = "slurm"\nsettings = {{ password = "{SECRET}" }}\n'
    settings = load_text(write_config, text, EFI_JOB_MANAGER_DATABASE__PASSWORD=SECRET + "2")
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert settings.database.password == SECRET + "2"


def test_redacted_hides_secrets(write_config: WriteConfig) -> None:
    """redacted() replaces every secret by *** and masks the database URL."""
    text = '[database]\nurl = "postgresql://efi@db/efi"\n'
    text += f'[notify.email]\nsmtp = "m:25"\nsender = "a@b"\npassword = "{SECRET}"\n'
    text += '[destinations.default]\nconnector = "slurm"\n'
    text += f'settings = {{ api_token = "{SECRET}", host = "h" }}\n'
    settings = load_text(write_config, text, EFI_JOB_MANAGER_DATABASE__PASSWORD=SECRET)
    printed = settings.redacted()
    assert SECRET not in repr(printed)
    assert printed["database"]["url"] == "postgresql://efi:***@db/efi"
    assert printed["database"]["password"] == "***"
    assert printed["notify"]["email"]["password"] == "***"
    assert printed["destinations"]["default"]["settings"] == {"api_token": "***", "host": "h"}


def test_masked_url_masks_a_password_in_the_url() -> None:
    """masked_url hides a password written in the URL."""
    database = DatabaseSettings(url=f"postgresql://efi:{SECRET}@db/efi")
    assert database.masked_url == "postgresql://efi:***@db/efi"
    assert database.sqlalchemy_url.password == SECRET


def test_password_key_wins_over_the_url() -> None:
    """The password key replaces one in the URL, and is masked too."""
    database = DatabaseSettings(url="postgresql://efi:old@db/efi", password=SECRET)
    assert database.sqlalchemy_url.password == SECRET
    assert database.masked_url == "postgresql://efi:***@db/efi"


def test_password_not_in_wrong_type_error(write_config: WriteConfig) -> None:
    """A wrongly typed password is shown as *** in the error."""
    message = error_of(write_config, "[database]\npassword = 123456789\n")
    assert message.endswith("database.password = ***: expected a string")
    assert "123456789" not in message


def test_password_not_in_bad_url_error(write_config: WriteConfig) -> None:
    """An unparsable URL with a password is shown masked in the error."""
    message = error_of(write_config, f'[database]\nurl = "mysql://efi:{SECRET}@db:port/efi"\n')
    assert "database.url" in message
    assert SECRET not in message


# --------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_file(write_config: WriteConfig) -> None:
    """Relative paths in the file are relative to the file's directory."""
    text = '[manager]\nresults_dir = "results"\ninput_dir = "../uploads"\n'
    text += '[pipelines]\npipeline_dir = "EST/pipelines"\n'
    text += '[database]\nurl = "sqlite:///jobs.sqlite"\n'
    path = write_config(text)
    settings = Settings.load(path, environ={})
    here = path.parent
    assert settings.manager.results_dir == here / "results"
    assert settings.manager.input_dir == here.parent / "uploads"
    assert settings.pipelines.pipeline_dir == here / "EST/pipelines"
    assert settings.database.sqlalchemy_url.database == str(here / "jobs.sqlite")


def test_relative_env_paths_resolve_against_the_cwd(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths from the environment are relative to the current directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    settings = load_text(write_config, "", EFI_JOB_MANAGER_MANAGER__RESULTS_DIR="out")
    assert settings.manager.results_dir == cwd / "out"


def test_connector_settings_paths_are_untouched(write_config: WriteConfig) -> None:
    """Paths inside a connector's settings are passed through as written."""
    text = '[destinations.default]\nconnector = "slurm"\nsettings = { remote_dir = "jobs" }\n'
    settings = load_text(write_config, text)
    assert settings.destinations["default"].settings["remote_dir"] == "jobs"


@pytest.mark.parametrize("template", ['"efi_{version}"', '"efi"', '"efi_{efi_db_version"', "3"])
def test_an_efi_db_template_must_use_the_version(write_config: WriteConfig,
                                                 template: str) -> None:
    """[pipelines.efi_db] template takes {efi_db_version} and nothing else."""
    path = write_config(f"[pipelines.efi_db]\ntemplate = {template}\n")
    with pytest.raises(ConfigError, match=r"pipelines\.efi_db\.template"):
        Settings.load(path, environ={})


def test_efi_db_settings_come_from_the_environment_too(write_config: WriteConfig) -> None:
    """Each key of [pipelines.efi_db] has an environment variable, as every setting does."""
    path = write_config("[pipelines.efi_db]\ndefault = \"efi_202406\"\n")
    settings = Settings.load(path, environ={
        "EFI_JOB_MANAGER_PIPELINES__EFI_DB__DEFAULT": "efi_202504",
        "EFI_JOB_MANAGER_PIPELINES__PREDEFINED_TAXONOMY_FILTERS": "bacteria,fungi"})
    assert settings.pipelines.efi_db.default == "efi_202504"
    assert settings.pipelines.predefined_taxonomy_filters == ("bacteria", "fungi")


@pytest.mark.parametrize("key", ["submit_grace", "lost_grace"])
def test_grace_periods_have_a_safe_minimum(write_config: WriteConfig, key: str) -> None:
    """A grace period shorter than a slow start would fail or resubmit a healthy job."""
    path = write_config(f'[manager]\n{key} = "30s"\n')
    with pytest.raises(ConfigError, match=rf"manager\.{key}.*at least 60"):
        Settings.load(path, environ={})
    assert getattr(Settings.load(write_config(f'[manager]\n{key} = "1m"\n'), environ={})
                   .manager, key) == 60.0


# --------------------------------------------------------------------------- all at once


def test_every_problem_of_a_file_is_reported_at_once(write_config: WriteConfig) -> None:
    """Each wrong, missing and unknown key is a line of one ConfigError, file first."""
    path = write_config(
        '[manager]\ninterval = "soon"\nmax_runing_jobs = 3\nclaim_batch = "10"\n'
        '[destinations.default]\nsettings = { partition = "x" }\n'
        '[routing]\ncgfp_quantify = "bigmem"\n'
        '[notify.email]\nsmtp = "nohost"\npassword = 5\n'
    )
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, environ={"EFI_JOB_MANAGER_DATABASE__ECHO": "maybe"})
    lines = str(caught.value).splitlines()
    assert lines == caught.value.messages
    assert len(lines) == len(caught.value.problems) == 9
    expected = [
        'EFI_JOB_MANAGER_DATABASE__ECHO: database.echo = "maybe": expected a boolean',
        f'{path}: manager.interval = "soon": expected a duration',
        f'{path}: manager.claim_batch = "10": expected an integer >= 1',
        f"{path}: unknown key manager.max_runing_jobs (did you mean manager.max_running_jobs?)",
        f"{path}: destinations.default.connector is required but missing",
        f'{path}: notify.email.smtp = "nohost": expected the SMTP server as "host:port"',
        f"{path}: notify.email.sender is required but missing",
        f"{path}: notify.email.password = ***: expected a string",
        f'{path}: routing.cgfp_quantify = "bigmem": expected the name of a configured',
    ]
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)


def test_a_problem_keeps_its_parts() -> None:
    """A Problem can be placed under a key of a file; ConfigError takes plain text too."""
    problem = Problem(("port",), "invalid", "slurm connector settings", value='"22"',
                      expected="a port number")
    placed = problem.within("site.toml", ("destinations", "hpc", "settings"))
    assert placed.message == (
        'site.toml: destinations.hpc.settings.port = "22": expected a port number')
    assert str(ConfigError("a.toml: not found")) == "a.toml: not found"


# --------------------------------------------------------------------------- connectors, routing

MINIMAL = """\
[database]
url = "sqlite:///{root}/jobs.sqlite"
[manager]
results_dir = "{root}/results"
input_dir = "{root}/uploads"
[pipelines]
command = ["true"]
params = {{ efi_config = "/opt/efi.config", fasta_db = "/db/uniprot" }}
[pipelines.efi_db]
default = "efi_202406"
"""


def write_site(tmp_path: Path, text: str) -> Path:
    (tmp_path / "jobs.sqlite").touch()  # an empty file is an empty SQLite database
    path = tmp_path / "site.toml"
    path.write_text(MINIMAL.format(root=tmp_path) + text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [["check"], ["run", "--once"], ["jobs", "list"]])
def test_a_connectors_settings_error_exits_2_naming_file_and_full_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        command: list[str]) -> None:
    """Every destination's refused settings are lines of the file, with the full dotted key."""
    monkeypatch.delenv("EFI_JOB_MANAGER_CONFIG", raising=False)
    path = write_site(tmp_path, (
        '[destinations.default]\nconnector = "slurm"\n'
        '[destinations.default.settings]\npartitoin = "efi"\ncommand_timeout = "soon"\n'
        '[destinations.big]\nconnector = "slurm"\nsettings = { port = "22" }\n'
        '[routing]\ncgfp_quantfy = "big"\n'))
    assert main(["--config", str(path), *command]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("efi-job-manager: ")]
    assert len(lines) == 4, err
    assert f"efi-job-manager: {path}: unknown job type routing.cgfp_quantfy (did you mean " \
           "routing.cgfp_quantify?)" in err
    assert (f"efi-job-manager: {path}: unknown key destinations.default.settings.partitoin "
            "(did you mean destinations.default.settings.partition?)") in err
    assert (f'efi-job-manager: {path}: destinations.default.settings.command_timeout = "soon": '
            "expected a duration > 0") in err
    assert (f'efi-job-manager: {path}: destinations.big.settings.port = "22": expected a port '
            "number") in err
    assert "Traceback" not in err


def test_a_local_connectors_settings_error_exits_2_naming_file_and_full_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The local connector's refused settings are lines of the file too, all at once."""
    monkeypatch.delenv("EFI_JOB_MANAGER_CONFIG", raising=False)
    path = write_site(tmp_path, (
        '[destinations.default]\nconnector = "local"\n'
        f'[destinations.default.settings]\nstate_dir = "{tmp_path}/state"\n'
        'kill_grace = "soon"\nkill_grac = 3\nenv = { A = 1 }\n'))
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("efi-job-manager: ")]
    assert lines == [
        f'efi-job-manager: {path}: destinations.default.settings.kill_grace = "soon": expected '
        'a duration >= 0 (between SIGTERM and SIGKILL): seconds, or a string such as "5s", '
        '"1m"',
        f"efi-job-manager: {path}: destinations.default.settings.env.A = 1: expected a string "
        "without NUL characters",
        f"efi-job-manager: {path}: unknown key destinations.default.settings.kill_grac (did you "
        "mean destinations.default.settings.kill_grace?); known keys: env, env_passthrough, "
        "kill_grace, python, state_dir",
    ], err
    assert "Traceback" not in err


def test_the_local_connectors_kill_grace_takes_a_duration(tmp_path: Path) -> None:
    """``kill_grace = "5s"`` (from the file or a variable) is 5 seconds, as in the core."""
    path = write_site(tmp_path, (
        '[destinations.default]\nconnector = "local"\n'
        f'settings = {{ state_dir = "{tmp_path}/state", kill_grace = "1m" }}\n'))
    name = "EFI_JOB_MANAGER_DESTINATIONS__DEFAULT__SETTINGS__KILL_GRACE"
    for environ, seconds in (({}, 60.0), ({name: "5s"}, 5.0)):
        connectors = load_connectors(Settings.load(path, environ=environ))
        try:
            assert connectors["default"].kill_grace == seconds  # type: ignore[attr-defined]
        finally:
            connectors["default"].close()
    with pytest.raises(ConfigError) as caught:
        load_connectors(Settings.load(path, environ={name: "-5s"}))
    assert str(caught.value).startswith(
        f'{name}: destinations.default.settings.kill_grace = "-5s": expected a duration >= 0')


def test_a_connector_setting_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    """A connector's key set by a variable is named by that variable; "5s" is a duration."""
    path = write_site(tmp_path, '[destinations.default]\nconnector = "slurm"\n')
    name = "EFI_JOB_MANAGER_DESTINATIONS__DEFAULT__SETTINGS__COMMAND_TIMEOUT"
    settings = Settings.load(path, environ={name: "5s"})
    connectors = load_connectors(settings)
    try:
        assert connectors["default"].settings.command_timeout == 5.0  # type: ignore[attr-defined]
    finally:
        connectors["default"].close()
    settings = Settings.load(path, environ={name: "-5s"})
    with pytest.raises(ConfigError) as caught:
        load_connectors(settings)
    assert str(caught.value) == (
        f'{name}: destinations.default.settings.command_timeout = "-5s": expected a duration > 0'
        ': seconds, or a string such as "30s", "2m"')


def test_a_third_party_connectors_value_error_is_a_problem_of_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connector raising a plain ValueError is reported under its settings' key."""

    class Picky:
        def __init__(self, config: object) -> None:
            raise ValueError("picky connector: the setting state_dir is required")

    monkeypatch.setattr(discovery, "connector_class", lambda name: Picky)
    path = write_site(tmp_path, '[destinations.default]\nconnector = "picky"\n')
    with pytest.raises(ConfigError) as caught:
        load_connectors(Settings.load(path, environ={}))
    assert str(caught.value) == (
        f"{path}: destinations.default.settings: picky connector: the setting state_dir is "
        "required")


def test_a_misspelt_routing_job_type_is_refused_with_a_hint(tmp_path: Path) -> None:
    """[routing] keys must be job types of the catalogue; a near miss gets "did you mean"."""
    path = write_site(tmp_path, (
        f'[destinations.default]\nconnector = "local"\n'
        f'settings = {{ state_dir = "{tmp_path}/state" }}\n'
        '[routing]\nest_generate_fastaa = "default"\n'))
    with pytest.raises(ConfigError) as caught:
        JobManager.from_settings(Settings.load(path, environ={}))
    message = str(caught.value)
    assert message.startswith(f"{path}: unknown job type routing.est_generate_fastaa (did you "
                              "mean routing.est_generate_fasta?); known job types: ")
    assert "cgfp_quantify" in message


def test_model_catalogue_connector_and_routing_errors_come_out_together(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad model, a bad pipeline command, a SQLite file that is not there, a connector nobody
    installed and a misspelt job type: one ``check`` names all five with file and key, exit 2."""
    monkeypatch.delenv("EFI_JOB_MANAGER_CONFIG", raising=False)
    path = tmp_path / "site.toml"
    path.write_text(
        MINIMAL.format(root=tmp_path)
        .replace('command = ["true"]', 'command = ["{nextflow}", "{nope}"]')
        .replace("[manager]", 'model = "no_such_model_module"\n[manager]')
        + '[destinations.default]\nconnector = "nowhere"\n[routing]\ngnt_gn = "default"\n',
        encoding="utf-8")
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("efi-job-manager: ")]
    assert lines == [
        f"efi-job-manager: {path}: database.model = 'no_such_model_module': cannot import it: "
        "No module named 'no_such_model_module'",
        f"efi-job-manager: {path}: pipelines.command[1]: '{{nope}}': unknown placeholder "
        "{nope} (known: {config}, {job_dir}, {nextflow}, {params_file}, {pipeline}, "
        "{pipeline_name})",
        f"efi-job-manager: {path}: database.url: the SQLite database {tmp_path}/jobs.sqlite "
        "does not exist (efi-job-manager init-db makes it, with the Job table, for development)",
        lines[3],
        lines[4],
    ]
    assert lines[3].startswith(f"efi-job-manager: {path}: unknown job type routing.gnt_gn "
                               "(did you mean routing.gnt_gnn?)")
    assert lines[4].startswith(f"efi-job-manager: {path}: destinations.default.connector: no "
                               "connector named 'nowhere' is installed; installed: local, slurm")
    assert not (tmp_path / "jobs.sqlite").exists()  # never created empty


def _operator_example() -> str:
    """The first TOML example of docs/operator.md (the complete site file)."""
    text = (Path(__file__).parents[1] / "docs" / "operator.md").read_text(encoding="utf-8")
    return text.split("```toml\n", 1)[1].split("```", 1)[0]


def test_the_operators_example_loads_and_reaches_slurm_over_ssh(tmp_path: Path) -> None:
    """docs/operator.md's site file is valid, and its Slurm destinations really use SSH."""
    path = tmp_path / "site.toml"
    path.write_text(_operator_example(), encoding="utf-8")
    settings = Settings.load(path, environ={})
    connectors = load_connectors(settings)
    try:
        for name in ("default", "bigmem"):
            slurm = connectors[name].settings  # type: ignore[attr-defined]
            assert (slurm.transport, slurm.host) == ("ssh", "login.cluster.example.org")
            assert slurm.remote_dir == "/scratch/efi/jobs"
    finally:
        for connector in connectors.values():
            connector.close()


def test_ssh_settings_with_the_local_transport_are_refused_not_ignored(
        write_config: WriteConfig) -> None:
    """host/user without transport = "ssh" would run sbatch here: an error naming each key."""
    path = write_config('[destinations.default]\nconnector = "slurm"\n'
                        'settings = { host = "login.example.org", user = "efi" }\n')
    settings = Settings.load(path, environ={})
    with pytest.raises(ConfigError) as caught:
        load_connectors(settings)
    assert caught.value.messages == [
        f'{path}: destinations.default.settings.host = "login.example.org": expected nothing '
        "with transport 'local', which runs Slurm's commands on this host: set transport = "
        '"ssh" to run them over SSH',
        f'{path}: destinations.default.settings.user = "efi": expected nothing with transport '
        "'local', which runs Slurm's commands on this host: set transport = \"ssh\" to run "
        "them over SSH",
    ]


def test_execution_connector_names_the_right_destination_for_hpc_and_local(
        write_config: WriteConfig) -> None:
    """The old EXECUTION_CONNECTOR: 'HPC' is slurm over ssh, 'LOCAL' slurm here (not local)."""
    path = write_config('EXECUTION_CONNECTOR = "HPC"\n')
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, environ={})
    (message,) = caught.value.messages
    assert 'HPC\' is destinations.default with connector = "slurm" and settings.transport = ' \
           '"ssh"' in message
    assert 'LOCAL\' is destinations.default with connector = "slurm" and settings.transport = ' \
           '"local"' in message
