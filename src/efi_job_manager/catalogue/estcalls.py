"""A call of one of EST's parameter scripts, parsed and rendered as the script would.

EST's ``bin/create_*_nextflow_params.py`` scripts are declared in
`efi_job_manager.catalogue.estscripts` with the pieces defined here: an `Option` as the
script's ``argparse`` declares it, a `Script` with its options and its
``check_args``/``render_params``. An `EstCall` is one call of a script: `EstCall.argv`
is the exact command line that makes EST's own script write the params file that
`EstCall.render` returns, so a site (and this project's golden tests) can check one
against the other. `CallBuilder` makes a call option by option.

EST's scripts also write the keys of their run-script template
(``nextflow_config``, ``workflow_def``, ``templates_dir``, ``template``) through
``**kwargs``; no pipeline reads them (`RUNNER_KEYS`) and they are not rendered here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

__all__ = [
    "RUNNER_KEYS",
    "CallBuilder",
    "EstArgumentError",
    "EstCall",
    "Option",
    "Render",
    "Script",
]

#: Keys EST's scripts write through ``**kwargs`` for their own run script; no pipeline reads them.
RUNNER_KEYS: Final = frozenset(
    {"nextflow_config", "workflow_def", "templates_dir", "template", "template_env"})


class EstArgumentError(ValueError):
    """A call EST's script would refuse (it prints a message and exits 1 or 2)."""


@attrs.frozen
class Option:
    """One command-line option of an EST script, as its ``add_argument`` declares it.

    Attributes:
        flag: The option (``--fasta-shards``).
        kind: ``str`` (no ``type=``), ``int``, ``float``, ``flag`` (``store_true``),
            ``bool`` (``BooleanOptionalAction``: ``--x`` / ``--no-x``) or ``append``.
        default: The declared default (None when there is none).
        choices: The declared ``choices``, if any.
        required: Declared ``required=True``.

    """

    flag: str
    kind: str = "str"
    default: Any = None
    choices: tuple[str, ...] = ()
    required: bool = False

    @property
    def dest(self) -> str:
        """Return the attribute name argparse gives the option."""
        return self.flag[2:].replace("-", "_")


#: A script's ``check_args`` + ``render_params``: parsed options → params.
Render = Callable[[dict[str, Any]], dict[str, Any]]


@attrs.frozen
class Script:
    """One of EST's parameter scripts.

    Attributes:
        name: The file in EST's ``bin/`` (``create_est_nextflow_params.py``).
        workflow: The Nextflow workflow it writes parameters for (``pipelines/est/est.nf``).
        options: Options every call takes (including EST's ``shared_args``).
        subcommands: Subcommand → options only it takes (empty: no subcommand).
        subcommand_dest: The attribute that holds the subcommand (``import_mode``).
        render: ``parsed options → params`` (EST's ``check_args`` + ``render_params``).
        named: Attributes ``render_params`` names; with ``leaks_kwargs`` every other
            parsed attribute is written too (EST's ``params.update(kwargs)``).
        leaks_kwargs: The script writes its unnamed attributes (``**kwargs``).
        drops_none: The script removes keys whose value is None.

    """

    name: str
    workflow: str
    options: tuple[Option, ...]
    render: Render
    subcommands: Mapping[str, tuple[Option, ...]] = attrs.field(factory=dict)
    subcommand_dest: str | None = None
    named: frozenset[str] = frozenset()
    leaks_kwargs: bool = False
    drops_none: bool = True

    def option(self, flag: str, subcommand: str | None) -> Option:
        """Return the option a flag names for a subcommand (KeyError if the script has none)."""
        for opt in (*self.options, *self.subcommands.get(subcommand or "", ())):
            if opt.flag == flag:
                return opt
        raise KeyError(f"{self.name} {subcommand or ''} has no option {flag}")


@attrs.frozen
class EstCall:
    """One call of an EST script: its subcommand and options, in order.

    Attributes:
        script: The script.
        subcommand: The subcommand (``family``…), or None.
        args: ``(flag, value)`` pairs in order; value None for a flag without a value.
        extras: Values ``render_params`` needs but the script's parser cannot take
            (EST's ``create_taxonomy`` writes ``fasta_db`` and has no ``--fasta-db``).

    """

    script: Script
    subcommand: str | None
    args: tuple[tuple[str, str | None], ...]
    extras: Mapping[str, str] = attrs.field(factory=dict)

    def argv(self) -> list[str]:
        """Return the arguments after the script's name, as EST's script takes them."""
        out = [self.subcommand] if self.subcommand else []
        for flag, value in self.args:
            out.append(flag)
            if value is not None:
                out.append(value)
        return out

    def parsed(self) -> dict[str, Any]:
        """Return the options as EST's ``argparse`` parses them (types, defaults, lists)."""
        script = self.script
        if script.subcommands and self.subcommand not in script.subcommands:
            raise EstArgumentError(f"{script.name}: invalid choice {self.subcommand!r}")
        declared = (*script.options, *script.subcommands.get(self.subcommand or "", ()))
        values: dict[str, Any] = {opt.dest: opt.default for opt in declared}
        if script.subcommand_dest:
            values[script.subcommand_dest] = self.subcommand
        given: set[str] = set()
        for flag, value in self.args:
            negated = flag.startswith("--no-")
            opt = script.option("--" + flag[5:] if negated else flag, self.subcommand)
            given.add(opt.flag)
            if opt.kind == "append":
                if value is None:
                    raise EstArgumentError(f"{script.name}: {opt.flag} expects a value")
                values[opt.dest] = [*(values[opt.dest] or []), value]
            else:
                values[opt.dest] = _parse_value(script.name, opt, value, negated)
        for opt in declared:
            if opt.required and opt.flag not in given:
                raise EstArgumentError(f"{script.name}: the following arguments are required: "
                                       f"{opt.flag}")
        values.update(self.extras)
        return values

    def render(self) -> dict[str, Any]:
        """Return the params file EST's script writes for this call."""
        script = self.script
        values = self.parsed()
        params = script.render(values)
        if script.leaks_kwargs:
            for dest, value in values.items():
                if dest not in script.named and dest not in RUNNER_KEYS \
                        and dest != script.subcommand_dest:
                    params[dest] = value
        if script.drops_none:
            params = {k: v for k, v in params.items() if v is not None}
        return params


def _parse_value(script: str, opt: Option, value: str | None, negated: bool) -> Any:
    if opt.kind in ("flag", "bool"):
        if value is not None or (negated and opt.kind != "bool"):
            raise EstArgumentError(f"{script}: {opt.flag} takes no value")
        return not negated
    if value is None:
        raise EstArgumentError(f"{script}: {opt.flag} expects a value")
    if opt.choices and value not in opt.choices:
        raise EstArgumentError(f"{script}: argument {opt.flag}: invalid choice: {value!r} "
                               f"(choose from {', '.join(opt.choices)})")
    if opt.kind == "int":
        try:
            return int(value)
        except ValueError:
            raise EstArgumentError(f"{script}: argument {opt.flag}: invalid int value: "
                                   f"{value!r}") from None
    if opt.kind == "float":
        try:
            return float(value)
        except ValueError:
            raise EstArgumentError(f"{script}: argument {opt.flag}: invalid float value: "
                                   f"{value!r}") from None
    return value


class CallBuilder:
    """Builds an `EstCall` option by option, refusing options the script does not declare."""

    def __init__(self, script: Script, subcommand: str | None = None) -> None:
        """Start a call of ``script`` (with its subcommand, if it has subcommands)."""
        self.script = script
        self.subcommand = subcommand
        self._args: list[tuple[str, str | None]] = []
        self._extras: dict[str, str] = {}

    def add(self, flag: str, value: str | None) -> CallBuilder:
        """Add ``flag value``; a None value leaves the option out."""
        if value is not None:
            self.script.option(flag, self.subcommand)
            self._args.append((flag, value))
        return self

    def add_all(self, flag: str, values: Sequence[str]) -> CallBuilder:
        """Add ``flag value`` once per value (an ``append`` option)."""
        for value in values:
            self.add(flag, value)
        return self

    def switch(self, flag: str, on: bool | None) -> CallBuilder:
        """Add a flag when ``on``; for a ``--x/--no-x`` option add ``--no-x`` when off."""
        if on is None:
            return self
        opt = self.script.option(flag, self.subcommand)
        if on:
            self._args.append((flag, None))
        elif opt.kind == "bool":
            self._args.append(("--no-" + flag[2:], None))
        return self

    def render_input(self, name: str, value: str) -> CallBuilder:
        """Pass a value ``render_params`` needs that the script's parser cannot take."""
        self._extras[name] = value
        return self

    def build(self) -> EstCall:
        """Return the call."""
        return EstCall(self.script, self.subcommand, tuple(self._args), dict(self._extras))
