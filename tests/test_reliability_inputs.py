"""Issue 17 (items 1, 2, 5, 7, 9): hostile or broken inputs fail at load time with exit status 2 and one
message naming the file and field, never a hang, a traceback or a silently useless run.

Reproducers live in tests/corpus/ (one file per case, a comment on top says what it was); the
hypothesis tests at the end generate more of the same shapes (aliases, non-finite numbers, huge integers,
strings where numbers go, runaway expressions)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import altair as alt
import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse import config
from dse.errors import ConfigError, DseUserError
from dse import expr as ex
from test_reliability_config import run_cli

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "corpus"
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def clean_exit_2(res, file: Path | str, *, field: str | None = None, out: Path | None = None) -> str:
    """Exit status 2, no traceback, the file (and field) named in the message; nothing under `out`."""
    code, stdout, stderr = res
    assert code == 2, (code, stdout[-2000:], stderr[-2000:])
    assert "Traceback" not in stderr + stdout, stderr
    assert str(file) in stderr, stderr
    if field is not None:
        assert re.search(rf"{re.escape(str(file))}:\d+:\d+: {re.escape(field)}: ", stderr), stderr
    if out is not None:
        assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    return stderr


# -- YAML reading: aliases, limits, encoding, folders -------------------------------------------------

def test_alias_bomb_is_rejected_in_one_pass_naming_file_and_field():
    """9 levels of 9 aliases expand to 9**9 values: rejected from the distinct nodes (a re-walk would hang)."""
    f = CORPUS / "alias_bomb.yaml"
    with pytest.raises(ConfigError) as ei:
        config.parse_yaml(f)
    (line,) = ei.value.problems
    assert line.startswith(f"{f}:") and "expands to more than 100,000 values" in line
    # the smallest mapping/list over the limit is named: level f holds 9**6 = 531,441 > 100,000 values
    assert re.match(rf"{re.escape(str(f))}:6:4: f: ", line), line


def test_alias_bomb_any_reader_through_cli(tmp_path):
    f = CORPUS / "alias_bomb.yaml"
    clean_exit_2(run_cli("describe", f), f, field="f")
    clean_exit_2(run_cli("describe", "H100-SXM", "--tech", f), f, field="f")
    out = tmp_path / "runs"
    clean_exit_2(run_cli("run", f, "--serial", "--quiet", "--out", out), f, field="f", out=out)
    clean_exit_2(run_cli("dashboard", tmp_path, "--spec", f, "--out", tmp_path / "p.html"), f, field="f")
    assert not (tmp_path / "p.html").exists()


def test_shared_aliases_below_the_limit_still_work():
    """Aliases are fine when they stay small: data as PyYAML builds it, positions, one duplicate report."""
    text = "base: &b {cores: 8, cores: 9}\nx: *b\ny: [*b, *b]\n"
    with pytest.raises(ConfigError) as ei:
        config.parse_yaml_text(text, "t.yaml")
    assert ei.value.problems == ["t.yaml:1:21: base.cores: duplicate key (first given on line 1; keep one)"]
    data, pos = config.parse_yaml_text("base: &b {cores: 8}\nx: *b\ny: [*b, *b]\n", "t.yaml")
    assert data == {"base": {"cores": 8}, "x": {"cores": 8}, "y": [{"cores": 8}, {"cores": 8}]}
    assert pos[("base", "cores")] == (1, 18) and pos[("y", 1)] == (1, 7)  # an alias points at its anchor


def test_expansion_just_under_and_over_the_limit():
    """Counted exactly: `a` holds 1 + 999 values, `b` (k aliases of a) 1 + 1000 k, the document
    1 + 2 keys + both; 100,000 is the limit."""
    def doc(k: int) -> str:
        return f"a: &a [{', '.join(['1'] * 999)}]\nb: [{', '.join(['*a'] * k)}]\n"
    config.parse_yaml_text(doc(98))  # 3 + 1,000 + 98,001 = 99,004 values
    with pytest.raises(ConfigError, match=r"^<string>:1:1: \(top level\): expands to more than 100,000"):
        config.parse_yaml_text(doc(99))  # b: 99,001, the document: 100,004
    with pytest.raises(ConfigError, match=r"^<string>:2:4: b: expands to more than 100,000"):
        config.parse_yaml_text(doc(100))  # b itself: 100,001


@pytest.mark.parametrize("text, where", [
    ("chip: &c\n  cores: 8\n  again: *c\n", "<string>:1:7: chip: "),
    ("a: &l [1, *l]\n", "<string>:1:4: a: "),
    ("- &x [[*x]]\n", "<string>:1:3: 0: "),
])
def test_self_referencing_alias_is_a_config_error(text, where):
    with pytest.raises(ConfigError) as ei:
        config.parse_yaml_text(text)
    assert ei.value.problems[0].startswith(where) and "cycle" in ei.value.problems[0]


def test_self_referencing_alias_through_cli():
    f = CORPUS / "alias_self.yaml"
    clean_exit_2(run_cli("describe", f), f, field="chip")
    clean_exit_2(run_cli("evaluate", f), f, field="chip")


def test_deep_nesting_is_a_config_error():
    f = CORPUS / "nested_deep.yaml"
    clean_exit_2(run_cli("describe", f), f)
    with pytest.raises(ConfigError, match="nested more than 50 levels"):
        config.parse_yaml_text("a: " + "[" * 51 + "]" * 51)
    config.parse_yaml_text("a: " + "[" * 49 + "]" * 49)  # 50 levels with the top mapping
    with pytest.raises(ConfigError, match="nested"):
        config.parse_yaml_text("a: " + "[" * 5000 + "]" * 5000)  # PyYAML's own recursion, turned into an error


def test_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "MAX_YAML_BYTES", 100)
    f = tmp_path / "big.yaml"
    f.write_text("name: x\n" + "# padding\n" * 20)
    with pytest.raises(ConfigError, match=r"big.yaml: over the 100-byte limit"):
        config.parse_yaml(f)


@pytest.mark.parametrize("value, message", [
    (".inf", "'.inf' is not a finite number"), ("-.Inf", "'-.Inf' is not a finite number"),
    (".nan", "'.nan' is not a finite number"), ("1.0e+999", "'1.0e+999' is not a finite number"),
    ("9223372036854775808", "integer 9223372036854775808 is too large"),
    ("-9223372036854775808", "is too large"), ("1" + "0" * 5000, "(5001 digits) is too large"),
])
def test_non_finite_and_huge_numbers_anywhere(value, message):
    with pytest.raises(ConfigError) as ei:
        config.parse_yaml_text(f"top:\n  list: [1, {{deep: {value}}}]\n", "f.yaml")
    (line,) = ei.value.problems
    assert line.startswith("f.yaml:2:20: top.list.1.deep: ") and message in line, line


def test_largest_int64_and_finite_floats_pass():
    data, _ = config.parse_yaml_text("a: 9223372036854775807\nb: 1.7e+308\nc: -1.0e-300\nd: '.inf'\ne: 1.0e999\n")
    assert data == {"a": 2**63 - 1, "b": 1.7e308, "c": -1e-300, "d": ".inf", "e": "1.0e999"}  # YAML 1.1: a string


def test_shipped_yaml_files_parse_unchanged():
    """The new single-pass reader builds exactly what yaml.safe_load builds for every shipped file."""
    files = [p for p in ROOT.rglob("*.yaml") if ".venv" not in p.parts and "corpus" not in p.parts]
    assert len(files) > 10
    for p in files:
        docs = config.parse_yaml_documents(p)
        assert [d for d, _ in docs] == [d for d in yaml.safe_load_all(p.read_text()) if d is not None], p


# -- designs: CLI exits 2 naming file and field ---------------------------------------------------------

DESIGN_CASES = {
    "design_cores_huge.yaml": "chip.cores",
    "design_num_chips_huge.yaml": "system.num_chips",
    "design_memory_gbps_per_stack_inf.yaml": "chip.memory_gbps_per_stack",
    "design_tdp_w_inf.yaml": "chip.tdp_w",
    "design_link_latency_us_inf.yaml": "system.link_latency_us",
    "design_sram_mb_nan.yaml": "chip.sram_mb",
    "design_cores_string.yaml": "chip.cores",
    "not_utf8.yaml": "(top level)",
}


@pytest.mark.parametrize("name", sorted(DESIGN_CASES))
@pytest.mark.parametrize("command", ["describe", "evaluate"])
def test_bad_design_files_exit_2_naming_file_and_field(name, command):
    f = CORPUS / name
    err = clean_exit_2(run_cli(command, f), f, field=DESIGN_CASES[name])
    assert err.count(str(f)) <= 2, err  # one problem (and at most a header line)


def test_non_utf8_design_names_line_and_byte():
    f = CORPUS / "not_utf8.yaml"
    err = clean_exit_2(run_cli("describe", f), f)
    assert f"{f}:1:1: (top level): not UTF-8 text (byte 0xe9 at offset 9)" in err


@pytest.mark.parametrize("command", ["describe", "evaluate"])
def test_folder_given_as_design(tmp_path, command):
    d = tmp_path / "designs.yaml"
    d.mkdir()
    for target in (d, tmp_path):
        err = clean_exit_2(run_cli(command, target), target)
        assert "is a folder, not a YAML file" in err


def test_bad_design_through_the_real_entry_point():
    """The installed `dse` command (a subprocess), not only the in-process one."""
    f = CORPUS / "design_num_chips_huge.yaml"
    res = subprocess.run([sys.executable, "-m", "dse", "evaluate", str(f)], capture_output=True, text=True,
                         timeout=120)
    clean_exit_2((res.returncode, res.stdout, res.stderr), f, field="system.num_chips")
    assert res.stderr.strip().count("\n") == 0, res.stderr  # one line


def test_multi_document_design_file_with_a_bad_document(tmp_path):
    f = tmp_path / "two.yaml"
    f.write_text("name: a\nchip: {cores: 8}\n---\nname: b\nchip: {cores: .inf}\n")
    clean_exit_2(run_cli("describe", f"{f}#a"), f, field="chip.cores")
    good = tmp_path / "good.yaml"
    good.write_text("name: a\nchip: {cores: 8}\n---\nname: b\nchip: {cores: 16}\n")
    assert run_cli("describe", f"{good}#b", "--json")[0] == 0


# -- expressions -------------------------------------------------------------------------------------

def test_long_sum_evaluates_without_recursion():
    e = ex.parse(" + ".join(["x"] * 600) + " - 2 * x <= 5")
    assert e.truth({"x": np.array([0.0, 0.005, 0.01])}).tolist() == [True, True, False]  # 598 * x <= 5
    assert float(ex.parse(" - ".join(["1"] * 10_00)).evaluate({})) == 1 - 999  # left to right
    assert float(ex.parse("8 / 4 / 2 * 3 - 1 - 1").evaluate({})) == 1.0


def test_long_sum_study_matches_the_plain_constraint(tmp_path):
    """600 x power_w <= 600,000 keeps exactly the designs of power_w <= 1,000 (it used to keep none)."""
    f = CORPUS / "study_constraint_long_sum.yaml"
    plain = tmp_path / "plain.yaml"
    plain.write_text(f.read_text().replace(" + ".join(["power_w"] * 600) + " <= 600000", "power_w <= 1000")
                     .replace("name: study-constraint-long-sum", "name: plain"))
    for study in (f, plain):
        assert run_cli("run", study, "--serial", "--quiet", "--out", tmp_path / "runs")[0] == 0
    a = pl.read_parquet(tmp_path / "runs" / "study-constraint-long-sum" / "results.parquet")
    b = pl.read_parquet(tmp_path / "runs" / "plain" / "results.parquet")
    assert a["feasible"].to_list() == b["feasible"].to_list() and a["feasible"].sum() > 0


@pytest.mark.parametrize("text, message", [
    ("(" * 2000 + "x" + ")" * 2000, "nested more than 64 levels"),
    ("not " * 100 + "x", "nested more than 64 levels"),
    ("-" * 100 + "x", "nested more than 64 levels"),
    ("(" * 5000 + "x" + ")" * 5000, "10,001 characters is over the 10,000-character limit"),
    ("power_w <= 1e999", "1e999 is not a finite number"),
    ("power_w <= 99999999999999999999", "is too large"),
    ("chip.memory < 'zzz'", "`<` orders numbers, but 'zzz' is a category"),
    ("x + 'a' > 1", "arithmetic on 'a'"),
    ("x in 5", "`in` needs a list"),
    ("x in [1, 'a']", "mixes kinds"),
    ("not 5", "`not` needs conditions"),
])
def test_expression_errors_at_parse(text, message):
    with pytest.raises(ex.ExprError) as ei:
        ex.parse(text)
    assert message in str(ei.value)
    assert str(ei.value).startswith(repr(text[:100] + "…") if len(text) > 120 else repr(text)) \
        or str(ei.value).startswith("cannot parse"), str(ei.value)


def test_64_levels_of_nesting_parse():
    assert ex.parse("(" * 63 + "x > 1" + ")" * 63).truth({"x": np.array([0, 2])}).tolist() == [False, True]


KINDS = {"chip.memory": "category", "power_w": "number", "chip.cores": "number", "chip.sparsity_2to4": "bool",
         "local_llm.mapping": "category"}


@pytest.mark.parametrize("text, kind", [
    ("power_w <= 2e5", "bool"), ("chip.memory in ['hbm3', 'none']", "bool"), ("chip.memory != 'none'", "bool"),
    ("chip.sparsity_2to4 and chip.cores * 2 > 3", "bool"), ("chip.sparsity_2to4 == 1", "bool"),
    ("not (power_w > 1 or chip.memory == 'hbm3')", "bool"),
])
def test_check_types_accepts(text, kind):
    assert ex.check_types(text, KINDS) == kind


def test_check_types_value_kinds_outside_conditions():
    assert ex.check_types("power_w / chip.cores", KINDS, condition=False) == "number"
    assert ex.check_types("chip.memory", KINDS, condition=False) == "category"


@pytest.mark.parametrize("text, message", [
    ("chip.memory <= 5", "`<=` orders numbers, but chip.memory is a category (text) (use == or in)"),
    ("chip.memory == 5", "`==` compares chip.memory (a category (text)) with 5 (a number)"),
    ("chip.memory in [1, 2]", "chip.memory is a category (text) but [1, 2] holds numbers"),
    ("power_w + chip.memory > 3", "arithmetic on chip.memory"),
    ("power_w", "is a number, not a condition; compare it (e.g. `power_w > 0`)"),
    ("chip.memory", "is a category, not a condition"),
    ("chip.memory and power_w > 1", "`and` needs conditions; chip.memory is a category"),
    ("chip.memroy == 'x'", "unknown name 'chip.memroy' (did you mean 'chip.memory'?"),
    ("local_llm.mapping >= 2", "local_llm.mapping is a category"),
])
def test_check_types_rejects_naming_the_expression(text, message):
    with pytest.raises(ex.ExprError) as ei:
        ex.check_types(text, KINDS)
    assert str(ei.value).startswith(repr(text)) and message in str(ei.value), str(ei.value)


def test_check_types_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="must be number, category or bool"):
        ex.check_types("x > 1", {"x": "float"})


def test_wrong_kind_at_run_time_is_an_expr_error_naming_the_expression():
    e = ex.parse("chip.memory <= 5")
    env = {"chip.memory": np.array(["hbm3", "none"])}
    for method in (e.violation, e.truth):
        with pytest.raises(ex.ExprError, match=r"^'chip.memory <= 5': cannot evaluate"):
            method(env)
    assert issubclass(ex.ExprError, DseUserError) and issubclass(ex.ExprError, ValueError)


@pytest.mark.parametrize("name, field", [
    ("study_constraint_inf.yaml", "constraints"),
    ("study_constraint_text_order.yaml", "constraints"),
    ("study_constraint_deep_parens.yaml", "constraints"),
])
def test_bad_constraints_fail_the_study_at_load(tmp_path, name, field):
    f = CORPUS / name
    out = tmp_path / "runs"
    clean_exit_2(run_cli("run", f, "--serial", "--quiet", "--out", out), f, field=field, out=out)


def test_bad_when_fails_the_study_without_traceback(tmp_path):
    """A `when:` comparing a category with a number: exit 2 quoting the expression (load-time type check
    with the knob kinds, naming the file: test_kind_errors_fail_the_study_at_load)."""
    res = run_cli("run", CORPUS / "study_when_text_vs_number.yaml", "--serial", "--quiet", "--out", tmp_path)
    assert res[0] == 2 and "Traceback" not in res[2] and "'chip.memory > 3'" in res[2], res


@pytest.mark.parametrize("name, field", [("study_constraint_text_vs_number.yaml", "constraints"),
                                         ("study_when_text_vs_number.yaml", "space.params.chip.memory_stacks.when")])
def test_kind_errors_fail_the_study_at_load(tmp_path, name, field):
    f = CORPUS / name
    out = tmp_path / "runs"
    clean_exit_2(run_cli("run", f, "--serial", "--quiet", "--out", out), f, out=out)


# -- the page: data placed in <script> --------------------------------------------------------------

EVIL = "<!--<script>\u2028</script><b>&amp;\u2029"


def _scripts(page: str) -> list[str]:
    return re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)


def test_inline_json_is_escaped_for_a_script_context():
    from dse.report.page import Dashboard, render_html, script_json

    assert json.loads(script_json({"k": EVIL})) == {"k": EVIL}
    assert not set("<>&\u2028\u2029") & set(script_json({"k": EVIL, EVIL: [EVIL]}))
    chart = alt.Chart(pl.DataFrame({"scenario": [EVIL, "ok"], "v": [1, 2]})).mark_point().encode(
        x="v:Q", y="scenario:N", tooltip=["scenario"]).properties(title=EVIL)
    page = render_html(Dashboard(title=EVIL, chart=chart, description=EVIL, notes=[EVIL],
                                 runs=[{"name": EVIL, "sampler": EVIL, "path": "p", "trials": 2, "feasible": 2,
                                        "front": 1, "front_shown": 1, "dominated_shown": 1}]))
    scripts = _scripts(page)
    assert len(scripts) == 2  # the bundle and the embed: neither was cut short nor merged
    assert page.count("</script>") == 2 and "<!--" not in page
    spec_text = re.search(r"const spec = (.*?);\n  vegaEmbed", scripts[1], flags=re.S).group(1)
    spec = json.loads(spec_text)
    assert EVIL in json.dumps(spec, ensure_ascii=False) and spec["title"] == EVIL
    assert "<script>" not in page.split("<body>")[1].split("<script")[0]  # the header text is HTML-escaped


def test_scenario_named_like_markup_keeps_the_dashboard_whole(tmp_path):
    """The issue's reproducer end to end: an inline scenario named `<!--<script>` in a run's dashboard."""
    raw = yaml.safe_load((ROOT / "dse/workloads/data/scenarios.yaml").read_text())
    study = {"name": "evil", "space": {"name": "s", "params": {"chip.cores": {"low": 8, "high": 128, "type": "int"},
                                                               "chip.sram_mb": {"low": 16, "high": 512}},
                                       "fixed": {"system.num_chips": 1}},
             "mix": {"name": "inline", "scenarios": [{"scenario": {**raw["scenarios"]["local_llm"], "name": "<!--<script>"},
                                                      "weight": 1.0}]},
             "objectives": [{"metric": "chip_cost_usd", "direction": "minimize"},
                            {"metric": "mix.throughput", "direction": "maximize"}],
             "sampler": {"kind": "random"}, "budget": {"trials": 16}, "seed": 3}
    f = tmp_path / "evil.yaml"
    f.write_text(yaml.safe_dump(study, sort_keys=False))
    res = run_cli("run", f, "--serial", "--quiet", "--out", tmp_path / "runs")
    assert res[0] == 0, res
    page = tmp_path / "page.html"
    res = run_cli("dashboard", tmp_path / "runs" / "evil", "--out", page)
    assert res[0] == 0, res
    text = page.read_text()
    assert text.count("</script>") == len(_scripts(text)) == 2 and "<!--" not in text
    assert "\\u003c!--\\u003cscript\\u003e" in _scripts(text)[1]


# -- --address: nothing listening, not Ray, silent ---------------------------------------------------

class _Server:
    """A TCP server on 127.0.0.1 that accepts and then sends `reply` (or nothing) and keeps the line open."""

    def __init__(self, reply: bytes | None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.reply, self.conns = reply, []
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def garbage_server():
    srv = _Server(b"HTTP/1.1 400 Bad Request\r\n\r\nnot ray at all")
    yield srv
    srv.close()


@pytest.fixture
def silent_server():
    srv = _Server(None)
    yield srv
    srv.close()


def _probe(address: str) -> str:
    """check_reachable's message; its waits are socket timeouts (3 s in all), so no wall clock is asserted."""
    from dse.study.execution import check_reachable

    with pytest.raises(DseUserError) as ei:
        check_reachable(address)
    return str(ei.value)


def test_address_nothing_listening():
    addr = f"127.0.0.1:{_free_port()}"
    msg = _probe(addr)
    assert f"'{addr}': no Ray cluster answers there" in msg
    msg = _probe(f"ray://{addr}")
    assert f"'ray://{addr}'" in msg


def test_address_answered_by_something_that_is_not_ray(garbage_server):
    msg = _probe(garbage_server.address)
    assert f"'{garbage_server.address}': answered, but not as Ray" in msg and "HTTP/1.1" in msg


def test_address_that_accepts_and_never_answers(silent_server):
    msg = _probe(silent_server.address)
    assert f"'{silent_server.address}': something accepts connections there but does not answer like Ray" in msg


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:99999", "ray://host:port"])
def test_address_malformed(address):
    msg = _probe(address)
    assert "expected host:port" in msg


def test_real_ray_head_passes_the_probe(ray_session):
    from dse.study.execution import check_reachable

    check_reachable(ray_session.get_runtime_context().gcs_address)  # no exception


def test_run_with_a_non_ray_address_exits_2_before_writing(tmp_path, garbage_server, silent_server):
    study = yaml.safe_load((CORPUS / "study_constraint_long_sum.yaml").read_text())
    study.update(name="addr", constraints=["power_w <= 1000"], execution={"backend": "ray"})
    f = tmp_path / "addr.yaml"
    f.write_text(yaml.safe_dump(study, sort_keys=False))
    for addr in (garbage_server.address, silent_server.address, f"127.0.0.1:{_free_port()}"):
        out = tmp_path / "runs"
        res = subprocess.run([sys.executable, "-m", "dse", "run", str(f), "--address", addr, "--out", str(out)],
                             capture_output=True, text=True, timeout=300)  # a hang guard, not a speed test
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert [line for line in res.stderr.splitlines() if addr in line] == res.stderr.strip().splitlines()[-1:]
        assert not out.exists(), sorted(out.rglob("*"))


# -- hypothesis: aliases, non-finite numbers, huge integers, strings where numbers go -----------------

NUMERIC_FIELDS = [("chip", "cores"), ("chip", "sram_mb"), ("chip", "clock_ghz"), ("chip", "memory_stacks"),
                  ("chip", "memory_gbps_per_stack"), ("chip", "tdp_w"), ("system", "num_chips"),
                  ("system", "link_latency_us")]
BAD_NUMBERS = [".inf", "-.inf", ".nan", ".NaN", "1.0e+999", "-1.0e+999", "1.0e999", "9223372036854775808",
               "1" + "0" * 400, "-" + "9" * 30, "'10**400'", "'1e400'", "'12 cores'", "''", "'∞'", "[]", "{}",
               "0x" + "f" * 20, "0b" + "1" * 70]


@st.composite
def design_text(draw) -> tuple[str, str]:
    """A small valid design with one hostile change; returns (YAML text, the dotted field it touches)."""
    section, key = draw(st.sampled_from(NUMERIC_FIELDS))
    body = {"chip": {"cores": "64", "memory": "hbm3", "memory_stacks": "4", "sram_mb": "50.0"},
            "system": {"num_chips": "8"}}
    shape = draw(st.sampled_from(["bad_number", "alias_bomb", "self_alias", "alias_ok"]))
    anchors = ""
    if shape == "bad_number":
        body[section][key] = draw(st.sampled_from(BAD_NUMBERS))
    elif shape == "alias_bomb":
        width, depth = draw(st.integers(6, 12)), draw(st.integers(6, 9))
        anchors = "l0: &l0 [" + ", ".join(["1"] * width) + "]\n"
        for i in range(1, depth):
            anchors += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]\n"
        body[section][key] = f"*l{depth - 1}"
    elif shape == "self_alias":
        body[section][key] = "&me [1, *me]"
    else:
        anchors = "n: &n 16\n"
        body[section][key] = "*n"
    lines = ["name: fuzzed", anchors.rstrip("\n")] if anchors else ["name: fuzzed"]
    for sec, fields in body.items():
        lines.append(f"{sec}:")
        lines += [f"  {k}: {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n", f"{section}.{key}"


@FUZZ
@given(case=design_text())
def test_fuzz_hostile_design_values(tmp_path, case):
    text, _field = case
    f = tmp_path / "fz.yaml"
    f.write_text(text)
    for command in ("describe", "evaluate"):
        code, out, err = run_cli(command, f, "--json")
        assert code in (0, 2), (code, err[-1500:])
        assert "Traceback" not in err + out, err
        if code == 2:
            assert str(f) in err, err


@st.composite
def hostile_expression(draw) -> str:
    shape = draw(st.sampled_from(["sum", "parens", "nots", "negs", "inf", "bigint", "text_order", "text_arith"]))
    n = draw(st.integers(1, 3000))
    if shape == "sum":
        return " + ".join(["power_w"] * n) + " <= 1e9"
    if shape == "parens":
        return "(" * n + "power_w <= 5" + ")" * n
    if shape == "nots":
        return "not " * n + "power_w <= 5"
    if shape == "negs":
        return "-" * n + "power_w <= 5"
    if shape == "inf":
        return f"power_w <= {draw(st.sampled_from(['1e999', '1e309', '-1e400', '9' * 400 + '.0']))}"
    if shape == "bigint":
        return f"power_w <= {'9' * draw(st.integers(20, 500))}"
    if shape == "text_order":
        return f"chip.memory {draw(st.sampled_from(['<', '<=', '>', '>=']))} 'zzz'"
    return "power_w + 'x' <= 5"


@FUZZ
@given(text=hostile_expression())
def test_fuzz_hostile_expressions_parse_or_fail_cleanly(text):
    """Parsing never raises anything but ExprError (no RecursionError, no OverflowError), and what parses
    evaluates over a column without a RecursionError."""
    try:
        e = ex.parse(text)
    except ex.ExprError as exc:
        assert str(exc)
        return
    e.violation({"power_w": np.array([1.0, 2.0]), "chip.memory": np.array(["hbm3", "none"])})


@pytest.mark.parametrize("text, at", [("\x00\nname: x\n", "f.yaml:1:1"), ("name: x\nchip: {cores: 8\x07}\n", "f.yaml:2:16")])
def test_control_characters_are_a_config_error(text, at):
    with pytest.raises(ConfigError) as ei:
        config.parse_yaml_text(text, "f.yaml")
    assert ei.value.problems[0].startswith(f"{at}: (top level): malformed YAML: character U+00")


@st.composite
def yaml_with_aliases(draw) -> str:
    """A small flow-style YAML document whose nodes may carry anchors and be referred to by aliases, some
    of them from inside themselves (a cycle), with scalars that include non-finite and huge numbers."""
    anchors_done: list[str] = []
    open_anchors: list[str] = []
    counter = [0]
    scalars = st.sampled_from(["1", "-2.5", "x", "'s'", "null", "true", ".inf", ".nan", "9" * 25, "1.0e+400", "7"])

    def node(depth: int) -> str:
        kind = draw(st.sampled_from(["scalar", "alias", "list", "map"] if depth < 4 else ["scalar", "alias"]))
        if kind == "alias":
            pool = anchors_done + (open_anchors if draw(st.booleans()) else [])
            if pool:
                return "*" + draw(st.sampled_from(pool))
            kind = "scalar"
        anchor = ""
        if kind in ("list", "map") and draw(st.booleans()):
            counter[0] += 1
            anchor = f"a{counter[0]}"
            open_anchors.append(anchor)
        if kind == "scalar":
            text = draw(scalars)
        elif kind == "list":
            text = "[" + ", ".join(node(depth + 1) for _ in range(draw(st.integers(0, 4)))) + "]"
        else:
            keys = draw(st.lists(st.sampled_from(["k", "m", "n", "cores"]), max_size=4))  # duplicates possible
            text = "{" + ", ".join(f"{k}: {node(depth + 1)}" for k in keys) + "}"
        if anchor:
            open_anchors.remove(anchor)
            anchors_done.append(anchor)
            text = f"&{anchor} {text}"
        return text

    return "root: " + node(0) + "\n"


def _expanded(x, seen: tuple = ()) -> int:
    if any(x is s for s in seen):
        return 10**9
    if isinstance(x, dict):
        return 1 + sum(1 + _expanded(v, seen + (x,)) for v in x.values())
    if isinstance(x, list):
        return 1 + sum(_expanded(v, seen + (x,)) for v in x)
    return 1


@settings(max_examples=200, deadline=None, derandomize=True)
@given(text=yaml_with_aliases())
def test_fuzz_yaml_reader_equals_pyyaml_or_says_why(text):
    """The reader builds exactly PyYAML's data, or raises one ConfigError naming the place (a cycle, a
    duplicate key, a non-finite or huge number); never another exception."""
    try:
        data, positions = config.parse_yaml_text(text, "f.yaml")
    except ConfigError as exc:
        assert exc.problems and all(p.startswith("f.yaml:") for p in exc.problems), exc.problems
        return
    assert data == yaml.safe_load(text) and _expanded(data) < 10**9
    assert positions[("root",)][0] == 1


def test_kinds_of_a_probe_env_feeds_check_types():
    env = {"power_w": np.array([1.5]), "chip.cores": np.array([8]), "chip.memory": np.array(["hbm3"]),
           "local_llm.mapping": np.array(["tp=1"], dtype=object), "chip.sparsity_2to4": np.array([True])}
    kinds = ex.kinds_of(env)
    assert kinds == {"power_w": "number", "chip.cores": "number", "chip.memory": "category",
                     "local_llm.mapping": "category", "chip.sparsity_2to4": "bool"}
    assert ex.check_types("power_w <= 5 and chip.memory == 'hbm3'", kinds) == "bool"
    with pytest.raises(ex.ExprError, match="chip.memory is a category"):
        ex.check_types("chip.memory <= 5", kinds)


def test_ray_address_from_the_environment_is_probed_before_the_executor_exists(monkeypatch, garbage_server):
    from types import SimpleNamespace

    from dse.study import execution

    monkeypatch.setattr(execution, "_ray_initialized", lambda: False)
    monkeypatch.setenv("RAY_ADDRESS", garbage_server.address)
    cfg = SimpleNamespace(backend="ray", address=None, num_cpus=None, chunk_size=8, inline_below=4)
    with pytest.raises(DseUserError, match=rf"^RAY_ADDRESS '{garbage_server.address}': answered, but not as Ray"):
        execution.make_executor(cfg, lambda cols: cols)
    assert isinstance(execution.make_executor(cfg, lambda cols: cols, serial=True), execution.SerialExecutor)


def test_endless_device_is_read_bounded():
    """/dev/zero as a design: the read stops at the size limit instead of filling memory."""
    err = clean_exit_2(run_cli("describe", "/dev/zero"), "/dev/zero")
    assert "over the 4,194,304-byte limit" in err


def test_check_types_unknown_name_among_many_stays_short():
    kinds = {f"scenario{i}.tpot_ms": "number" for i in range(300)}
    with pytest.raises(ex.ExprError) as ei:
        ex.check_types("scenario7.tpot_mss <= 5", kinds)
    msg = str(ei.value)
    assert "did you mean 'scenario7.tpot_ms'?" in msg and "300 metrics and knobs are known" in msg and len(msg) < 200
