"""How a ``cre`` command reads its command line: its own options and, for the commands that run
a Beam pipeline, Beam's pipeline options. Anything else is refused, exit 2, with argparse's
message and the option meant where one is close ("did you mean --max-reject-ratio?").

Beam's options are those of every registered ``PipelineOptions`` class, as Beam's own parser
knows them (``PipelineOptions.get_all_options`` hands it to a callback); the project's classes
are registered too, but their options are taken only by the commands that declare them, so that
``cre deliver --max-reject-ratio`` is refused rather than ignored. What Beam takes is handed to
the runner as given, in ``beam_args``.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import sys
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import flag

# spellings of Beam options that runners.runner_arguments respells as Beam does
_ALIASES = {"--flink-master": "--flink_master"}
GROUP_EXITS = "exit codes: each action's (ACTION --help); 2 without an action."
BEAM_OPTIONS = ("Takes Beam's pipeline options too (--runner, --direct_num_workers 2, "
                "--flink-master HOST:PORT, ...), handed to the runner as given; any other option "
                "is refused.")


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default unless its help says it (or it has none), switches as flags
    (``--force``, though ``--force=true`` is taken too), and keeps the indented paragraphs of a
    description or epilog (the exit codes) as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is False
                or default is argparse.SUPPRESS or default in ("", [])
                or (not action.option_strings and action.nargs not in ("?", "*"))):
            return text
        return f"{text} (default: %(default)s)"

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        return "" if _switch(action) else super()._format_args(action, default_metavar)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        """``--dashed-name, --underscored_name VALUE``: the value once."""
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        value = self._format_args(action, self._get_default_metavar_for_optional(action))
        return ", ".join(action.option_strings) + (f" {value}" if value else "")

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Paragraphs filled; the indented lines of one (the exit codes) each on its own,
        wrapped under its text."""
        return "\n\n".join(
            "\n".join(textwrap.fill(line, width, initial_indent=indent,
                                     subsequent_indent=indent + " " * 5)
                       for line in paragraph.splitlines())
            if any(line.startswith(" ") for line in paragraph.splitlines()) else
            textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                          subsequent_indent=indent)
            for paragraph in text.split("\n\n"))


def _switch(action: argparse.Action) -> bool:
    """A ``FLAG`` option: ``--force``, or ``--force=true|false`` as templates pass it."""
    return action.type is flag and action.nargs == "?"


def exit_codes(ok: str, *, failure: str = "the platform failed, or could not do it (one line "
               "on stderr)", usage: str = "the command line is refused (an unknown option, a "
               "missing value): nothing done", no: Optional[str] = None) -> str:
    """A command's epilog: what each of its exit codes (``transforms.contract.Exit``) means."""
    return "\n".join(["exit codes:", f"  0  {ok}", f"  1  {failure}", f"  2  {usage}",
                      *([f"  3  {no}"] if no else [])])


class CommandParser(argparse.ArgumentParser):
    """A ``cre`` command's parser. It keeps the arguments and subcommands declared on it (for
    the refusal's suggestions and for walking the commands); with ``beam`` it also takes Beam's
    pipeline options, into ``beam_args``, never abbreviated, as Beam does not abbreviate."""

    def __init__(self, *args: Any, beam: bool = False, **kwargs: Any):
        self.beam = beam
        self.arguments: list[argparse.Action] = []
        self.subcommands: Optional[argparse._SubParsersAction] = None
        kwargs.setdefault("formatter_class", HelpFormatter)
        if beam:
            kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.arguments.append(action)
        return action

    def add_subparsers(self, **kwargs: Any) -> argparse._SubParsersAction:
        kwargs.setdefault("prog", self.prog)
        self.subcommands = super().add_subparsers(**kwargs)
        return self.subcommands

    def option_strings(self) -> set[str]:
        """This command's option strings and its subcommands'."""
        known = {string for action in self.arguments for string in action.option_strings}
        for parser in self.subcommands.choices.values() if self.subcommands else ():
            known |= parser.option_strings()
        return known

    def parse_known_args(self, args: Optional[Sequence[str]] = None,
                         namespace: Optional[argparse.Namespace] = None) -> tuple[Any, list]:
        """As argparse's, with ``command_parser`` (the innermost parser of the command given)
        and, for a Beam command, ``beam_args`` set on the namespace."""
        args = list(sys.argv[1:] if args is None else args)
        beam_args: list[str] = []
        if self.beam:
            beam_args, args = self._beam_arguments(args)
        namespace, rest = super().parse_known_args(args, namespace)
        if getattr(namespace, "command_parser", None) is None:
            namespace.command_parser = self
        if self.beam:
            namespace.beam_args = beam_args
        return namespace, rest

    def _beam_arguments(self, tokens: list[str]) -> tuple[list[str], list[str]]:
        """``tokens`` parted into Beam's pipeline options, each with its value, as given, and
        the rest, for this parser: the command's own options and what nobody knows."""
        own = self.option_strings() | _project_options()
        beam, rest, index = [], [], 0
        while index < len(tokens):
            token = tokens[index]
            if token == "--":
                rest += tokens[index:]
                break
            name, equals, value = token.partition("=")
            following = [] if equals else tokens[index + 1:index + 2]
            taken = None
            if token.startswith("--") and name not in own:
                taken = self._beam_arity(_ALIASES.get(name, name) + equals + value,
                                         [word for word in following if not word.startswith("-")])
            if taken is None:
                rest.append(token)
            else:
                beam += tokens[index:index + 1 + taken]
            index += 1 + (taken or 0)
        return beam, rest

    def _beam_arity(self, token: str, following: list[str]) -> Optional[int]:
        """How many of ``following`` (none or one word) Beam's option ``token`` takes; None
        when Beam has no such option. A value Beam refuses is refused here, exit 2."""
        try:
            _, unknown = _beam_parser().parse_known_args([token, *following])
        except argparse.ArgumentError as error:
            self.error(str(error))
        return None if token in unknown else len(following) - len(unknown)

    def refuse(self, unknown: Sequence[str]) -> NoReturn:
        """Exit 2 for arguments nobody knows: argparse's message, and the close matches."""
        self.error(self.unrecognized(unknown))

    def unrecognized(self, unknown: Sequence[str]) -> str:
        """argparse's message for arguments it does not know, with the options meant."""
        known = {string.lstrip("-"): string for string in
                 self.option_strings() | (_beam_options() if self.beam else set())}
        names = [word.partition("=")[0] for word in unknown if word.startswith("-")]
        meant = [known[match[0]] + (f" for {name}" if len(names) > 1 else "") for name in names
                 for match in [difflib.get_close_matches(name.lstrip("-"), known, 1, 0.7)]
                 if match]
        return (f"unrecognized arguments: {' '.join(unknown)}"
                + (f" (did you mean {', '.join(meant)}?)" if meant else ""))


def subcommand(commands: argparse._SubParsersAction, name: str, summary: str, *,
               description: Optional[str] = None, epilog: str,
               **settings: Any) -> argparse.ArgumentParser:
    """A subcommand: ``summary`` in its parent's list, ``description`` (else the summary; a
    Beam run's says it takes Beam's options) and its exit codes (``epilog``) in its own help."""
    description = " ".join([description or summary,
                            *([BEAM_OPTIONS] if settings.get("beam") else [])])
    return commands.add_parser(name, help=summary, description=description, epilog=epilog,
                               formatter_class=HelpFormatter, **settings)


def group(commands: argparse._SubParsersAction, name: str, summary: str,
          dest: str = "action") -> argparse._SubParsersAction:
    """A subcommand made of actions (``cre db migrate``...), one of which must be given."""
    parser = subcommand(commands, name, summary, epilog=GROUP_EXITS)
    return parser.add_subparsers(dest=dest, required=True, metavar="ACTION")


def walk(parser: CommandParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], CommandParser]]:
    """Every command under ``parser``, by its words (``("backup", "verify")``), itself first."""
    yield path, parser
    if parser.subcommands is not None:
        for name, child in parser.subcommands.choices.items():
            yield from walk(child, (*path, name))


@functools.cache
def _beam_parser() -> argparse.ArgumentParser:
    """Beam's parser of every registered ``PipelineOptions`` class, as Beam builds it, raising
    its errors instead of exiting."""
    built: list[argparse.ArgumentParser] = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=built.append)
    built[0].exit_on_error = False
    return built[0]


@functools.cache
def _project_options() -> frozenset[str]:
    """The spellings of the project's own options classes (their ``FLAGS``): each command
    takes those it declares, and none through Beam."""
    return frozenset(spelling for cls in PipelineOptions.__subclasses__()
                     for one in getattr(cls, "FLAGS", ()) for spelling in one.spellings)


@functools.cache
def _beam_options() -> frozenset[str]:
    """Beam's options as spelt by their names, for the refusal's suggestions."""
    return frozenset(f"--{name}" for name in PipelineOptions([]).get_all_options()) \
        - _project_options()
