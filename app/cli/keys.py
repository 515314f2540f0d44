"""``flowlog keys``: make, list and revoke API keys on flowlog's database: the first key of a
fresh installation, and the way back in when every admin key is lost. What it does is in the
log as the REST API's keys are, under the actor ``cli:<user>``."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from datetime import UTC, datetime

import orjson

from flowlog.access import keys
from flowlog.access.keys import KeyRecord
from flowlog.access.roles import ROLES, Role
from flowlog.access.store import KeyStore
from flowlog.cli.problems import Exit
from flowlog.eventstore import EventStore, create_pool
from flowlog.wire.keys import KEY_NAME_PATTERN, TENANT_PATTERN
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code, WorkflowError

ACTIONS = ("create", "list", "revoke")
_EXITS = {Code.BAD_INPUT: Exit.USAGE, Code.KEY_NOT_FOUND: Exit.NOT_FOUND}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("key_id", nargs="?", metavar="ID", help="revoke: the key's id")
    parser.add_argument("--name", help="create: the key's name (unique in its tenant)")
    parser.add_argument("--tenant", help="create: its tenant; list: only this tenant's")
    parser.add_argument("--role", choices=ROLES, help="create: what it may do")
    parser.add_argument("--expires", metavar="TIME", help="create: when it stops working")
    parser.add_argument("--reason", default="", help="revoke: why (recorded)")
    parser.add_argument("--json", action="store_true", help="answer in JSON")


def usage_problem(args: argparse.Namespace) -> str | None:
    if args.action == "create" and not (args.name and args.tenant and args.role):
        return "create needs --name, --tenant and --role"
    if args.action == "create" and not re.match(TENANT_PATTERN, args.tenant):
        return "--tenant: letters, digits and _.@- (at most 100)"
    if args.action == "create" and not re.match(KEY_NAME_PATTERN, args.name):
        return "--name: letters, digits and _.@- (at most 100, starting with a letter or digit)"
    if args.action == "revoke" and not args.key_id:
        return "revoke needs the key's ID (flowlog keys list shows them)"
    if args.action != "revoke" and args.key_id:
        return f"{args.action} takes no ID"
    return None


async def run(args: argparse.Namespace, database_url: str) -> int:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        store = KeyStore(EventStore(pool))
        caller = Caller(actor=f"cli:{_user()}", reason=args.reason or None)
        try:
            return await _act(store, args, caller)
        except WorkflowError as exc:
            print(f"flowlog keys: {exc}", file=sys.stderr)
            return _EXITS.get(exc.code, Exit.FAILED)
    finally:
        await pool.close()


async def _act(store: KeyStore, args: argparse.Namespace, caller: Caller) -> int:
    if args.action == "create":
        expires = _time(args.expires) if args.expires else None
        if expires is not None and expires <= datetime.now(UTC):
            raise WorkflowError(Code.BAD_INPUT, "--expires: must be in the future")
        secret = keys.new_secret()
        record = await store.create(
            key_id=keys.new_id(), secret=secret, tenant=args.tenant, name=args.name,
            role=Role(args.role), expires_at=expires, caller=caller,
        )  # fmt: skip
        if args.json:
            print(orjson.dumps({**_document(record), "key": secret}).decode())
        else:
            print(secret)
            print(f"key {record.key_id}: {record.name}, {record.role} of tenant {record.tenant}"
                  " (shown once: keep it now)", file=sys.stderr)  # fmt: skip
        return Exit.OK
    if args.action == "revoke":
        record = await store.revoke(args.key_id, tenant=None, caller=caller, reason=args.reason)
        print(orjson.dumps(_document(record)).decode() if args.json
              else f"key {record.key_id} ({record.name}): revoked")  # fmt: skip
        return Exit.OK
    records = await store.listed(args.tenant, None, 10_000)
    if args.json:
        print(orjson.dumps([_document(r) for r in records]).decode())
        return Exit.OK
    now = datetime.now(UTC)
    for r in records:
        used = r.last_used_at.isoformat(timespec="seconds") if r.last_used_at else "never used"
        print(f"{r.key_id}  {r.prefix}…  {r.tenant}  {r.name}  {r.role}  {r.status(now)}  {used}")
    if not records:
        print("(no keys)")
    return Exit.OK


def _document(record: KeyRecord) -> dict[str, object]:
    return {
        "id": record.key_id, "name": record.name, "tenant": record.tenant,
        "role": record.role.value, "prefix": record.prefix,
        "status": record.status(datetime.now(UTC)), "createdAt": record.created_at,
        "createdBy": record.created_by, "expiresAt": record.expires_at,
        "lastUsedAt": record.last_used_at, "revokedAt": record.revoked_at,
        "revokedBy": record.revoked_by, "revokeReason": record.revoke_reason,
    }  # fmt: skip


def _time(text: str) -> datetime:
    from flowlog.times import parse_utc

    try:
        return parse_utc(text)
    except ValueError:
        raise WorkflowError(Code.BAD_INPUT, f"--expires: not an ISO 8601 time: {text!r}") from None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
