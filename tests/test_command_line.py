"""The ``cre`` command line: every command refuses what it does not understand (exit 2, before
doing anything), takes Beam's pipeline options where it runs a pipeline, and documents itself
(a help on every argument, a description and the exit codes on every command). In process:
``cli.main`` with every command's handler replaced by one that only records its call, which a
refused command line must never make."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pipelines import operations
from pipelines.commands import cli, parsing, run
from pipelines.options import flag

DOCS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
EVERY = list(parsing.walk(cli.parser()))  # cre itself first, then each command under it
RUNNABLE = [(path, parser) for path, parser in EVERY if parser.get_default("handler")]


def _name(path: tuple[str, ...]) -> str:
    return " ".join(path)


def _ids(commands: list) -> list[str]:
    return [" ".join(("cre", *path)) for path, _ in commands]


def _value(action: argparse.Action) -> str:
    """A value ``action`` takes: its first choice, else one its type accepts."""
    if action.choices:
        return str(next(iter(action.choices)))
    for text in ("1", "2026-01-01"):
        try:
            (action.type or str)(text)
            return text
        except (ValueError, argparse.ArgumentTypeError):
            continue
    raise AssertionError(f"no value for {action.dest}")


def _required(parser: parsing.CommandParser) -> list[str]:
    """What ``parser`` cannot be run without: its positionals, required options, and the first
    option of each group of which one is required."""
    words = []
    for action in parser.arguments:
        if not action.option_strings and action.nargs is None:
            words.append(_value(action))
        elif action.required:
            words += [action.option_strings[0], _value(action)]
    for group in parser._mutually_exclusive_groups:
        if group.required:
            words += [group._group_actions[0].option_strings[0],
                      _value(group._group_actions[0])]
    return words


@pytest.fixture
def inert(monkeypatch):
    """``cli.main`` on a parser whose commands only record that they ran (the list returned),
    and a structured zone nobody answers for, should anything get past them."""
    ran, real = [], cli.parser

    def built() -> parsing.CommandParser:
        cre = real()
        for path, parser in parsing.walk(cre):
            if parser.get_default("handler"):
                parser.set_defaults(handler=lambda args, path=path: ran.append(path) or 0)
        return cre

    monkeypatch.setattr(cli, "parser", built)
    monkeypatch.setenv("CRE_CASSANDRA_HOSTS", "192.0.2.1:1")  # TEST-NET: never answers
    return ran


def _refused(capsys, argv: list[str]) -> str:
    """``cre argv``'s stderr, once it has exited 2."""
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2, argv
    return capsys.readouterr().err


@pytest.mark.parametrize("path,parser", RUNNABLE, ids=_ids(RUNNABLE))
def test_every_command_refuses_an_unknown_option_and_runs_nothing(inert, capsys, path, parser):
    argv = [*path, *_required(parser)]
    assert cli.main(argv) == 0 and inert == [path]  # what it needs, and only that, runs
    inert.clear()
    err = _refused(capsys, [*argv, "--no-such-option=7"])
    assert f"cre {_name(path)}: error: unrecognized arguments: --no-such-option=7" in err
    assert err.startswith(f"usage: cre {_name(path)}") and inert == []


@pytest.mark.parametrize("path,parser", RUNNABLE, ids=_ids(RUNNABLE))
def test_the_misspelling_of_an_option_names_it(inert, capsys, path, parser):
    options = sorted(parser.option_strings() - {"-h", "--help"},
                     key=lambda option: (-len(option), option))
    assert options, f"cre {_name(path)} has no option: give this test another misspelling"
    misspelt = options[0][:-1] + "x" + options[0][-1]  # --max-reject-ratio: --max-reject-ratxio
    err = _refused(capsys, [*path, *_required(parser), misspelt])
    assert f"(did you mean {options[0]}?)" in err and inert == []


def test_a_misspelt_ingest_option_on_replay_is_refused_with_the_option_meant(inert, capsys):
    err = _refused(capsys, ["replay", "BAF_20261122_03", "--max-reject-ration", "0.1"])
    assert err.splitlines()[-1] == (
        "cre replay: error: unrecognized arguments: --max-reject-ration 0.1 "
        "(did you mean --max-reject-ratio?)")
    assert inert == []


@pytest.mark.parametrize("argv,meant", [
    (["ingest", "--input", "x", "--zones-root", "y", "--json"], None),  # it always prints JSON
    (["deliver", "--vacation", "V", "--zones-root", "z", "--max-reject-ratio", "0.1"], None),
    (["deliver", "--vacation", "V", "--zones-root", "z", "--cassandra-max-in-flight", "9"], None),
    (["serve", "--zones-root", "z", "--json"], None),
    (["serve", "--zones-root", "z", "--replication", "SimpleStrategy:3"], None),
    (["status", "V", "--replication", "SimpleStrategy:3"], None),
    (["backup", "verify", "--from", "b", "--runner", "DirectRunner"], None),
    (["deliver", "--vacation", "V", "--zones-root", "z", "--direct_num_worker", "2"],
     "--direct_num_workers"),
    (["recover", "--runer", "PrismRunner"], "--runner"),
])
def test_options_are_taken_only_where_they_act(inert, capsys, argv, meant):
    err = _refused(capsys, argv)
    assert "unrecognized arguments" in err and inert == []
    assert (f"did you mean {meant}?" in err) if meant else "did you mean" not in err


def test_a_value_beam_refuses_is_refused_before_anything_runs(inert, capsys):
    err = _refused(capsys, ["restore", "--from", "b", "--direct_running_mode", "bogus"])
    assert "argument --direct_running_mode: invalid choice: 'bogus'" in err and inert == []


@pytest.mark.parametrize("argv,beam_args,own", [
    (["deliver", "--vacation", "V", "--zones-root", "z", "--runner", "PrismRunner",
      "--direct_num_workers", "2", "--flink-master", "h:1", "--save_main_session"],
     ["--runner", "PrismRunner", "--direct_num_workers", "2", "--flink-master", "h:1",
      "--save_main_session"], {"vacation": "V"}),
    (["backup", "--to", "r", "--runner", "DirectRunner", "--force=true"],
     ["--runner", "DirectRunner"], {"to": "r", "force": True, "action": None}),
    (["replay", "--direct_num_workers", "2", "V", "--zones_root=z"],
     ["--direct_num_workers", "2"], {"vacation_id": "V", "zones_root": "z"}),
    (["ingest", "--runner=FlinkRunner", "--flink_master=f:8081", "--input", "a",
      "--zones-root", "b", "--no_deliver=true"],
     ["--flink_master=f:8081"], {"runner": "FlinkRunner", "no_deliver": True}),
    (["restore", "--from", "b", "--experiments", "x", "--experiments=y"],
     ["--experiments", "x", "--experiments=y"], {"from_": "b", "replication": None}),
])
def test_beam_options_reach_the_runner_as_given(monkeypatch, argv, beam_args, own):
    monkeypatch.delenv("CRE_CASSANDRA_REPLICATION", raising=False)
    args, rest = cli.parser().parse_known_args(argv)
    assert rest == [] and args.beam_args == beam_args
    assert {name: getattr(args, name) for name in own} == own


def test_operators_role_without_a_role_is_refused(capsys, tmp_path):
    operators = tmp_path / "operators.json"  # the real handler refuses: it is never written
    err = _refused(capsys, ["operators", "role", "olivia", "--operators", str(operators)])
    assert "cre operators: error: role NAME needs --role viewer|operator" in err
    assert not operators.exists()


def test_a_tenant_profile_its_ingests_would_refuse_is_refused(capsys, tmp_path):
    tenants = tmp_path / "tenants.json"
    err = _refused(capsys, ["tenants", "add", "arkea", "--tenants", str(tenants),
                            "--password-stdin", "--pipeline-option", "max_reject_ration=0.1"])
    assert err.splitlines()[-1] == (
        "cre tenants: error: its ingests would be refused: unrecognized arguments: "
        "--max_reject_ration=0.1 (did you mean --max_reject_ratio?)")
    assert not tenants.exists()


def test_backup_verify_is_a_subcommand_that_reaches_verify(monkeypatch, capsys):
    checked = []

    def verify_backup(folder: str) -> operations.Verified:
        checked.append(folder)
        return operations.Verified(folder, 3, 12, ())

    monkeypatch.setattr(operations, "verify_backup", verify_backup)
    assert cli.main(["backup", "verify", "--from", "backups/cre-20261206T170000Z"]) == 0
    assert checked == ["backups/cre-20261206T170000Z"]
    assert "3 files, 12 rows" in capsys.readouterr().out


def test_backup_without_to_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setenv("CRE_CASSANDRA_HOSTS", "192.0.2.1:1")  # TEST-NET: never answers
    assert "cre backup: error: give --to ROOT" in _refused(capsys, ["backup"])


@pytest.mark.parametrize("path,parser", EVERY, ids=_ids(EVERY))
def test_every_command_documents_its_arguments_and_exit_codes(capsys, monkeypatch, path,
                                                              parser):
    monkeypatch.setenv("CRE_CASSANDRA_PASSWORD", "never-shown")
    undocumented = [action.option_strings[0] if action.option_strings else action.dest
                    for action in parser.arguments
                    if not action.help or action.help is argparse.SUPPRESS]
    assert undocumented == [], f"cre {_name(path)}: no help for {undocumented}"
    assert parser.description, f"cre {_name(path)} has no description"
    assert parser.epilog and parser.epilog.startswith("exit codes"), _name(path)
    with pytest.raises(SystemExit) as exited:
        cli.main([*path, "--help"])
    shown = capsys.readouterr().out
    assert exited.value.code == 0 and "exit codes:" in shown and "never-shown" not in shown
    for action in parser.arguments:  # a switch is shown as one: --force, never --force [FORCE]
        if action.type is flag:
            assert not re.search(re.escape(action.option_strings[0]) + r" \[?[A-Z]", shown)


def test_defaults_are_shown():
    shown = dict(EVERY)[("ingest",)].format_help()
    assert re.search(r"REJECTED\.\s+\(default: 0\.05\)", shown)
    assert re.search(r"--runner RUNNER\s+The Beam runner\. \(default: DirectRunner\)", shown)


def test_every_command_is_in_the_exit_codes_table_of_the_operations_guide():
    table = DOCS.read_text()
    missing = [_name(path) for path, _ in RUNNABLE if f"| `cre {_name(path)}` |" not in table]
    assert missing == [], f"docs/operations.md's exit codes table lacks {missing}"


def test_the_flex_template_launcher_refuses_the_unknown(capsys):
    with pytest.raises(SystemExit) as exited:
        run.main(["ingest", "--input=gs://b/x.tar.bz2", "--zones_root=gs://b/z",
                  "--max_reject_ration=0.1"])
    assert exited.value.code == 2
    assert "did you mean --max_reject_ratio?" in capsys.readouterr().err
