"""The `skillyard` command line: every click command lives in this package, and no domain
module imports click. Thin: the work happens in runtime.yard, runtime.serving and sandbox.

Commands whose stacks are heavy (the servers, MCP, plotting) are imported only when used:
otherwise they would cost every `skillyard` invocation about a second. Errors are mapped
to one line and an exit code in one place: runtime/cli/errors.py.
"""

from __future__ import annotations

import importlib

import click

from .. import logs
from . import engine, skills
from .errors import Group
from .signals import exit_on_signals

LAZY_COMMANDS = {
    "audit": "runtime.cli.audit:audit_command",
    "cluster": "runtime.cli.cluster:cluster_group",
    "cost": "runtime.cli.cost:cost_command",
    "delete": "runtime.cli.delete:delete_command",
    "learn": "runtime.cli.learn:learn_command",
    "ledger": "runtime.cli.cost:ledger_group",
    "maintain": "runtime.cli.maintain:maintain_command",
    "mcp": "runtime.cli.serve:mcp_command",
    "proxy": "runtime.cli.serve:proxy_command",
    "serve": "runtime.cli.serve:serve_command",
    "session": "runtime.cli.session:session_group",
    "tenant": "runtime.cli.tenant:tenant_group",
    "tools": "runtime.cli.tools:tools_command",
    "validate": "runtime.cli.validate:validate_command",
}


class SkillyardGroup(Group):
    """The top group: its own commands, and the lazy ones by name."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=SkillyardGroup)
@click.option("-v", "--verbose", count=True, help="More logs on stderr (-v info, -vv debug).")
@click.option("--log-json", is_flag=True, help="Logs as JSON lines on stderr.")
@click.version_option(package_name="skillyard")
def cli(verbose: int, log_json: bool) -> None:
    """skillyard: build, test-gate, register and run AI-agent skills in hardened containers."""
    logs.configure(["WARNING", "INFO", "DEBUG"][min(verbose, 2)], json_logs=log_json)


for command in (
    engine.exec_cmd,
    engine.gc,
    engine.doctor,
    engine.images,
    engine.wheelhouse,
    skills.add,
    skills.test,
    skills.list_cmd,
    skills.show,
    skills.search,
    skills.run,
    skills.versions,
    skills.rollback,
    skills.export,
    skills.fix,
    skills.create,
    skills.demo,
):
    cli.add_command(command)


def main() -> None:
    """The `skillyard` console script (and `python -m runtime`)."""
    exit_on_signals()
    cli(prog_name="skillyard")
