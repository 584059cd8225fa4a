"""Argv builders and the generated submit description, checked with HTCondor's own bindings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import classad2
import htcondor2
import pytest
from balsam_condor import commands
from balsam_condor.simulator import submitfile
from hypothesis import given, settings
from hypothesis import strategies as st

from balsam_agent.scheduler import LaunchSpec, SchedulerError

# Words a step may pass: anything printable but line breaks, "$$" and a literal "$(DOLLAR)" (which
# HTCondor cannot carry; refused, see below). "$" and "(" are drawn often, to meet the macro syntax.
words = st.text(st.characters(exclude_characters="\n\r\x00", exclude_categories=["Cs"]) | st.sampled_from("$()"),
                max_size=12).filter(lambda word: "$$" not in word and "$(DOLLAR)" not in word)


def spec(tmp_path: Path, **fields) -> LaunchSpec:
    values: dict[str, Any] = dict(job_name="argo-j1-0-a1", argv=("/opt/argo/bin/alpgen", "-n", "10"), workdir=tmp_path,
                  nodes=2, processes_per_node=4, wall_minutes=30)
    values.update(fields)
    return LaunchSpec(**values)


@settings(max_examples=200, deadline=None)
@given(st.lists(words, max_size=6))
def test_arguments_round_trip_through_the_manuals_quoting_rules(argv):
    quoted = commands.quote_arguments(argv)
    # condor_submit expands $(DOLLAR) to $ (checked with the real bindings below); then the words
    # split back exactly, spaces, quotes and all.
    expanded = htcondor2.Submit({"arguments": quoted}).expand("arguments")
    assert submitfile.split_arguments(expanded) == list(argv)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), words, max_size=4))
def test_environment_round_trip(env):
    expanded = htcondor2.Submit({"environment": commands.quote_environment(env)}).expand("environment")
    assert submitfile.parse_environment(expanded) == env


@pytest.mark.parametrize("word", ["$$", "a$$(X)", "$(DOLLAR)", "x$(DOLLAR)y"])
def test_texts_the_submit_language_cannot_carry_are_refused(word):
    # What the real expander makes of them with the $(DOLLAR) escape: not the word.
    escaped = "'" + word.replace("$", "$(DOLLAR)") + "'"
    assert htcondor2.Submit({"arguments": escaped}).expand("arguments") != "'" + word + "'"
    with pytest.raises(SchedulerError, match="cannot pass literally") as info:
        commands.quote_arguments(["ok", word])
    assert not info.value.transient
    with pytest.raises(SchedulerError, match="cannot pass literally"):
        commands.quote_environment({"A": word})


def test_macro_like_texts_round_trip():
    for word in ["$ENV(HOME)", "$(ENV(HOME))", "$RANDOM_INTEGER(1,2)", "$(x)$(y)", "$([1])", "$", "a$"]:
        expanded = htcondor2.Submit({"arguments": commands.quote_arguments([word])}).expand("arguments")
        assert submitfile.split_arguments(expanded) == [word]


def test_line_breaks_are_refused():
    with pytest.raises(SchedulerError) as info:
        commands.quote_arguments(["a\nqueue"])
    assert not info.value.transient


def test_bad_environment_name_is_refused():
    with pytest.raises(SchedulerError):
        commands.quote_environment({"A B": "1"})


def test_generated_description_parses_with_htcondor_bindings(tmp_path):
    text = commands.render_submit_description(
        spec(tmp_path, env={"ARGO_JOB_ID": "j1", "PRICE": "$5 it's"}), log_file="argo.log",
        extra=[("request_memory", "2GB")])
    description = htcondor2.Submit(text)
    assert description["universe"] == "vanilla"
    assert description["executable"] == "/opt/argo/bin/alpgen"
    assert description["request_cpus"] == "8"
    assert description["initialdir"] == str(tmp_path)
    assert description["log"] == str(tmp_path / "argo.log")
    assert description["request_memory"] == "2GB"
    assert description.getQArgs() == "1"
    assert classad2.ExprTree(description["MY.ArgoJobName"]).eval() == "argo-j1-0-a1"
    assert "60" not in description["periodic_remove"] and "1800" in description["periodic_remove"]
    env = submitfile.parse_environment(description.expand("environment"))
    assert env == {"ARGO_JOB_ID": "j1", "PRICE": "$5 it's"}


def test_job_name_is_a_classad_string_literal():
    name = 'x"y\\z'
    assert commands.classad_string(name) == classad2.quote(name)
    constraint = commands.job_name_constraint(name)
    assert classad2.ExprTree(constraint).eval(classad2.ClassAd({"ArgoJobName": name})) is True


def test_scheduler_args_only_allowed_commands():
    assert commands.submit_commands_from_args(["request_memory=4GB", "priority = 5"]) == [
        ("request_memory", "4GB"), ("priority", "5")]
    for bad in (["executable=/bin/evil"], ["-name", "other"], ["arguments=x"], ["+ArgoJobName=x"]):
        with pytest.raises(SchedulerError, match="request_memory"):
            commands.submit_commands_from_args(bad)


def test_status_argv_is_one_command_for_all_clusters():
    argv = commands.condor_q_argv(["3", "17", "4"])
    assert argv[:2] == ["condor_q", "-json"]
    assert argv[-3:] == ["3", "17", "4"]
    history = commands.condor_history_argv(["3", "4"])
    assert history[-2:] == ["-constraint", "ClusterId == 3 || ClusterId == 4"]


@pytest.mark.parametrize("bad", ["", "3.0", "3; rm -rf /", "-all", "x"])
def test_cluster_ids_are_checked(bad):
    with pytest.raises(SchedulerError):
        commands.condor_rm_argv(bad)


def test_dag_argv_tags_the_dagman_job(tmp_path):
    argv = commands.condor_submit_dag_argv(tmp_path / "w.dag", job_name="argo-j-1-a2")
    assert argv[0] == "condor_submit_dag" and "-force" in argv
    assert argv[argv.index("-append") + 1] == '+ArgoJobName = "argo-j-1-a2"'
    assert argv[-1] == str(tmp_path / "w.dag")
