"""The README cannot rot: every ```python block in it is one of

- a verbatim copy of a file under examples/ (tests/test_examples.py synthesizes and runs those);
- an excerpt, first line ``# Excerpt of <path>``: the rest is a contiguous piece of that file, as it is;
- a fragment, first line ``# Fragment of a Stack's __init__ (given: a, b)``: compiled, every free name either
  bound in it, a builtin or given, and run inside a real Stack (``self``) with a role for each ``*_role`` given,
  then synthesized.

Facts the README states that live elsewhere (the CLI pin, the quickstart's payload) are read from their source.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import subprocess
import symtable
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLES = ROOT / "examples"

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
_EXCERPT = re.compile(r"# Excerpt of (?P<path>\S+)$")
_FRAGMENT = re.compile(r"# Fragment of a Stack's __init__ \(given: (?P<given>[\w, ]+)\)$")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    source: str

    @property
    def first_line(self) -> str:
        return self.source.split("\n", 1)[0]

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def python_blocks(text: str) -> list[Block]:
    return [Block(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


BLOCKS = python_blocks(README)
EXAMPLE_FILES = {p: p.read_text() for p in EXAMPLES.rglob("*.py") if "__pycache__" not in p.parts}


def verbatim_file(block: Block) -> Path | None:
    return next((p for p, text in EXAMPLE_FILES.items() if text == block.source), None)


def free_names(source: str) -> set[str]:
    """Names a module reads but never binds (at module level, or as globals in its functions and classes)."""
    top = symtable.symtable(source, "<block>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    read = {s.get_name() for s in top.get_symbols() if s.is_referenced()}

    def walk(table: symtable.SymbolTable) -> Iterator[str]:
        for child in table.get_children():
            yield from (s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced())
            yield from walk(child)

    return (read | set(walk(top))) - bound - set(dir(builtins))


def given_names(block: Block) -> list[str]:
    match = _FRAGMENT.match(block.first_line)
    assert match, block
    return [name.strip() for name in match["given"].split(",")]


FRAGMENTS = [b for b in BLOCKS if _FRAGMENT.match(b.first_line)]


def test_readme_has_python_blocks_of_each_kind() -> None:
    assert any(verbatim_file(b) for b in BLOCKS)
    assert any(_EXCERPT.match(b.first_line) for b in BLOCKS)
    assert FRAGMENTS


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_every_python_block_compiles(block: Block) -> None:
    compile(block.source, str(block), "exec")


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_every_python_block_is_a_file_an_excerpt_or_a_declared_fragment(block: Block) -> None:
    if verbatim_file(block) is not None:
        return
    if excerpt := _EXCERPT.match(block.first_line):
        path = ROOT / excerpt["path"]
        assert path.is_file(), f"{block}: {excerpt['path']} does not exist"
        body = block.source.split("\n", 1)[1]
        assert body in path.read_text(), f"{block} is no longer a piece of {excerpt['path']}: copy it again"
        return
    assert _FRAGMENT.match(block.first_line), (
        f"{block} is neither a copy of a file under examples/ (did the file change? copy it again), nor an "
        "excerpt ('# Excerpt of <path>'), nor a fragment (\"# Fragment of a Stack's __init__ (given: ...)\")"
    )
    undefined = free_names(block.source) - set(given_names(block))
    assert not undefined, f"{block} uses names it neither defines nor declares as given: {sorted(undefined)}"


def test_usage_shows_the_quickstart_app_verbatim() -> None:
    usage = README[README.index("\n## Usage\n") :]
    (first, *_) = python_blocks(usage)
    assert first.source == (EXAMPLES / "quickstart" / "app.py").read_text()


def test_readme_shows_the_quickstart_handler_verbatim() -> None:
    handler = (EXAMPLES / "quickstart" / "jobs" / "reports.py").read_text()
    assert any(b.source == handler for b in BLOCKS)


def test_free_names_finds_what_a_block_does_not_define() -> None:
    source = "import os\nx = os.sep + y\ndef f():\n    return z + x\nprint(len(x))\n"
    assert free_names(source) == {"y", "z"}


# --- the fragments, run ------------------------------------------------------------------------------------------


_RUN_FRAGMENTS = """
import json, sys
import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

app = cdk.App()
stack = cdk.Stack(app, "ReadmeFragments")
for index, fragment in enumerate(json.loads(sys.stdin.read())):
    scope = cdk.Stack(stack, f"Fragment{index}") if index else stack
    namespace = {"self": scope}
    for name in fragment["roles"]:
        namespace[name] = iam.Role(scope, name, assumed_by=iam.AccountRootPrincipal())
    exec(compile(fragment["source"], fragment["where"], "exec"), namespace)
print(json.dumps(Template.from_stack(stack).to_json()))
"""


@pytest.fixture(scope="module")
def fragments_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every fragment run in a Stack of its own and synthesized, in a fresh process whose working directory holds
    the code folders the fragments name (jsii resolves relative asset paths against its own working directory,
    as `cdk synth` does against the app's; the handler check at synth needs each handler's module there)."""
    work = tmp_path_factory.mktemp("fragments")
    shutil.copytree(EXAMPLES / "quickstart" / "jobs", work / "jobs")
    (work / "thumbs").mkdir()
    (work / "thumbs" / "thumbs.py").write_text("def make(payload, job):\n    return {}\n")
    fragments = []
    for block in FRAGMENTS:
        given = [name for name in given_names(block) if name != "self"]
        unsupported = [name for name in given if not name.endswith("_role")]
        assert not unsupported, f"{block}: the test can give only self and *_role names, not {unsupported}"
        fragments.append({"source": block.source, "where": str(block), "roles": given})
    result = subprocess.run(
        [sys.executable, "-c", _RUN_FRAGMENTS],
        input=json.dumps(fragments),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    template: dict[str, Any] = json.loads(result.stdout)
    return template


def test_job_types_fragment_synthesizes_two_workers(fragments_template: dict[str, Any]) -> None:
    from lambda_handlers.contract import Env

    handlers = sorted(
        r["Properties"]["Environment"]["Variables"][Env.HANDLER]
        for r in fragments_template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and Env.HANDLER in r["Properties"]["Environment"]["Variables"]
    )
    assert handlers == ["reports.generate", "thumbs.make"]
    roles_with_invoke = {
        role["Ref"]
        for r in fragments_template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        and any(s["Action"] == "execute-api:Invoke" for s in r["Properties"]["PolicyDocument"]["Statement"])
        for role in r["Properties"]["Roles"]
    }
    assert len(roles_with_invoke) == 2  # reporting_role and admin_role


# --- facts stated in the README ----------------------------------------------------------------------------------


def test_readme_gives_the_install_lines() -> None:
    assert "pip install async-job-construct " in README
    assert 'pip install "async-job-construct[local]"' in README


def test_readme_names_the_pinned_cdk_cli() -> None:
    pin = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert f"aws-cdk@{pin}" in README
    assert f"CDK CLI **{pin.rsplit('.', 1)[0]}.x**" in README
    assert "Node.js >= 20" in README


def test_readme_says_how_to_silence_the_jsii_banner() -> None:
    assert "export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20" in README
    for script in ("scripts/run", "scripts/test"):
        assert "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20" in (ROOT / script).read_text()


def test_readme_awscurl_lines_sign_for_execute_api_in_the_urls_region() -> None:
    commands = re.findall(r"^awscurl .*$", README.replace("\\\n  ", " "), re.M)
    assert commands
    for command in commands:
        region = re.search(r"--region (\S+)", command)
        url = re.search(r"https://\S+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com/prod/jobs\S*", command)
        assert "--service execute-api" in command
        assert region
        assert url
        assert region[1] == url[1]
    post = next(c for c in commands if "-X POST" in c)
    body = re.search(r"-d '([^']+)'", post)
    assert body
    assert "accounts" in json.loads(body[1])  # the quickstart handler's payload


def test_readme_keeps_the_two_command_quick_start() -> None:
    assert "scripts/run     #" in README
    assert "scripts/test    #" in README
    for script in ("scripts/run", "scripts/test"):
        assert os.access(ROOT / script, os.X_OK)


def test_readme_links_the_upgrade_rules_and_they_exist() -> None:
    assert "](docs/upgrading.md)" in README
    assert (ROOT / "docs" / "upgrading.md").is_file()
    for link in re.findall(r"\]\(((?:docs|examples)/[^)#]+)", README):
        assert (ROOT / link).exists(), link


def _node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    return int(version.strip().lstrip("v").split(".")[0])


@pytest.mark.skipif(_node_major() != 20, reason="jsii prints its end-of-life banner on Node 20 only")
def test_the_readmes_variable_silences_the_jsii_banner_on_node_20(tmp_path: Path) -> None:
    def stderr_of_jsii(**extra: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"}
        result = subprocess.run(
            [sys.executable, "-c", "import constructs"],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return result.stderr

    banner = "Node 20 is end-of-life and not supported anymore by this software"
    assert banner in stderr_of_jsii()
    assert banner not in stderr_of_jsii(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    assert banner in README


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (outside code blocks)."""
    prose = re.sub(r"^```.*?^```$", "", markdown, flags=re.S | re.M)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", prose, re.M)
    }


def test_readme_anchors_lead_to_headings() -> None:
    for path, anchor in re.findall(r"\]\(((?:docs|examples)/[^)#]+)#([^)]+)\)", README):
        assert anchor in heading_anchors((ROOT / path).read_text()), f"{path}#{anchor}"
    for anchor in re.findall(r"\]\(#([^)]+)\)", README):
        assert anchor in heading_anchors(README), f"#{anchor}"
    assert heading_anchors("## Scaling: `bench/synth_scaling.py`\n```\n# not a heading\n```\n") == {
        "scaling-benchsynth_scalingpy"
    }
