"""The walls of the code: the folders' order (sql <- eventstore <- projections <- the rest of
flowlog), the floors inside flowlog that docs/design.md names, and every module importable on
its own."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"app": "flowlog", "eventstore": "flowlog.eventstore",
           "projections": "flowlog.projections", "sql": "flowlog.sql"}  # fmt: skip
SUBPACKAGES = {"eventstore", "projections", "sql"}
MAY_IMPORT = {
    "sql": set(),
    "eventstore": {"sql"},
    "projections": {"sql", "eventstore"},
    "app": {"sql", "eventstore", "projections"},
}
FLOORS_MARKER = "<!-- floors:"


def module_name(path: Path) -> str:
    """The import name of a file of one of the folders."""
    relative = path.relative_to(ROOT)
    folder, *rest = relative.with_suffix("").parts
    parts = [FOLDERS[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> list[tuple[Path, str]]:
    return sorted(
        (path, module_name(path)) for folder in FOLDERS for path in (ROOT / folder).rglob("*.py")
    )


def imported(source: str, filename: str = "<test>") -> list[str]:
    """Every first-party module a source imports, wherever the import stands (in a function,
    under TYPE_CHECKING); ``from a import b`` names ``a.b``, which may be a module or a name."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{filename}: relative import"
            assert node.module is not None
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name.split(".")[0] == "flowlog"]


def folder_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "app"


def room_of(module: str) -> str | None:
    """The room of a module of ``app/`` (the first name under flowlog); None for the package's
    face, ``flowlog`` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


# -- the folders -------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", sorted(MAY_IMPORT))
def test_a_folder_imports_only_the_folders_below_it(folder: str) -> None:
    files = [(path, name) for path, name in modules() if folder_of(name) == folder]
    assert files
    for path, _ in files:
        foreign = {folder_of(m) for m in imported(path.read_text(), str(path))}
        foreign -= MAY_IMPORT[folder] | {folder}
        assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


# -- the floors --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Floors:
    order: list[str]
    """Floor names, top first."""
    rooms: dict[str, int]
    """Each room's floor, as an index into order."""


def read_floors(text: str) -> Floors:
    """The floors table of docs/design.md: the lines after the marker, up to a blank line."""
    lines = text[text.index(FLOORS_MARKER) :].splitlines()[1:]
    rows = []
    for line in lines:
        if not line.strip():
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    order: list[str] = []
    rooms: dict[str, int] = {}
    for floor, names, *_ in rows[2:]:  # past the header and its rule
        order.append(floor)
        for room in re.findall(r"`([a-z_]+)`", names):
            assert room not in rooms, f"{room} stands on two floors"
            rooms[room] = len(order) - 1
    return Floors(order, rooms)


def floor_violations(floors: Floors, imports: Mapping[str, Iterable[str]]) -> list[str]:
    """What breaks the floors in ``imports`` (module -> the modules it imports): a room on no
    floor, an import of a floor above, rooms of one floor that import each other in a circle."""
    found: list[str] = []
    peers: dict[str, set[str]] = {}
    for module, targets in imports.items():
        room = room_of(module)
        if room is None or folder_of(module) != "app":
            continue
        if room not in floors.rooms:
            found.append(f"{module}: room {room!r} stands on no floor of docs/design.md")
            continue
        for target in targets:
            other = room_of(target)
            if other is None or other == room or folder_of(target) != "app":
                continue
            if other not in floors.rooms:
                found.append(f"{module} imports {target}: room {other!r} stands on no floor")
            elif floors.rooms[other] < floors.rooms[room]:
                found.append(
                    f"{module} ({floors.order[floors.rooms[room]]}) imports {target} "
                    f"({floors.order[floors.rooms[other]]}, a floor above)"
                )
            elif floors.rooms[other] == floors.rooms[room]:
                peers.setdefault(room, set()).add(other)
    try:
        TopologicalSorter(peers).prepare()
    except CycleError as cycle:
        found.append(f"rooms import each other in a circle: {' -> '.join(cycle.args[1])}")
    return found


def flowlog_imports() -> dict[str, list[str]]:
    return {name: imported(path.read_text(), str(path)) for path, name in modules()}


def test_every_room_stands_on_its_floor() -> None:
    floors = read_floors((ROOT / "docs" / "design.md").read_text())
    assert floors.order[0] == "entry points"
    assert floors.order[-1] == "leaves"
    rooms = {room_of(name) for _, name in modules() if folder_of(name) == "app"} - {None}
    assert sorted(set(floors.rooms) - rooms) == [], "the table names rooms that do not exist"
    assert floor_violations(floors, flowlog_imports()) == []


def test_the_floors_check_sees_an_import_from_above_and_a_circle() -> None:
    """The check itself: a workflow module importing the API, in a function, is reported; so
    is a circle of two feature rooms; and a room missing from the table."""
    floors = read_floors((ROOT / "docs" / "design.md").read_text())
    upward = imported("def f():\n    from flowlog.api.access import Tokens\n")
    assert upward == ["flowlog.api.access.Tokens"]
    reported = floor_violations(floors, {"flowlog.workflow.state": upward})
    assert reported == [
        "flowlog.workflow.state (workflow) imports flowlog.api.access.Tokens "
        "(interfaces, a floor above)"
    ]
    circle = {"flowlog.archive.x": ["flowlog.audit.y"], "flowlog.audit.y": ["flowlog.archive.x"]}
    assert floor_violations(floors, circle)[0].startswith("rooms import each other in a circle")
    assert floor_violations(floors, {"flowlog.newroom": []}) == [
        "flowlog.newroom: room 'newroom' stands on no floor of docs/design.md"
    ]
    assert floor_violations(floors, {"flowlog.api.x": ["flowlog.workflow.state"]}) == []


def test_the_client_imports_nothing_of_the_server() -> None:
    """The client stands on the API's floor but builds on flowlog.wire alone: a program that
    talks to flowlog over HTTP does not load the server."""
    for path, name in modules():
        if name == "flowlog.client" or name.startswith("flowlog.client."):
            server = [m for m in imported(path.read_text(), str(path)) if room_of(m) == "api"]
            assert server == [], f"{path.relative_to(ROOT)} imports {server}"


# -- the size of a module ----------------------------------------------------------------------

MAX_LINES = 500
SIZED = ("app", "eventstore", "projections")


def test_no_module_is_over_500_lines() -> None:
    """A module past 500 lines holds more than one concern, and is split by what it holds (a
    client apart from its settings, the fold apart from the state it folds), not cut at a
    line."""
    over = [
        f"{path.relative_to(ROOT)} ({lines})"
        for folder in SIZED
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert over == [], f"modules over {MAX_LINES} lines: {', '.join(over)}"


# -- every module alone ------------------------------------------------------------------------

ALONE = """
import os, sys, traceback
# Third-party libraries first, once: what is checked is the order of flowlog's own imports.
import aiohttp.web, aiohttp_jinja2, asyncpg, jinja2, orjson, prometheus_client, pydantic
import authlib, cloudevents.core, cronsim, joserfc, pydantic_settings, tqdm, yarl
failed = []
for module in sys.argv[1:]:
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(reader)
        try:
            __import__(module)
        except BaseException:
            os.write(writer, traceback.format_exc().encode())
            os._exit(1)
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        said = pipe.read().decode()
    if os.waitpid(child, 0)[1] != 0:
        failed.append(f"{module}: {said}")
print("\\n".join(failed))
"""


@pytest.mark.timeout(320)  # the subprocess has 300 s: one fork and import per module
def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """A cycle of module-level imports only shows when a module of the cycle is imported first
    (a user's script, a command that loads one module lazily): each module is imported first,
    in a process of its own forked before any of flowlog was loaded."""
    names = [name for _, name in modules()]
    assert len(names) > 100
    done = subprocess.run(
        [sys.executable, "-c", ALONE, *names], cwd=ROOT / "tests", capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
