"""`puhui federation`: the common mechanism across the exchanges' nodes (docs/federation.md).

On a node: `identity` prints what the registry's operator enrols it with, `join` links it to
the registry, `sync` registers its claims (`puhui serve` does it in the background), `status`
shows what was registered and what waits. On the registry: `enrol` a node, `nodes` to see them,
`serve` the registry's API."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from puhui.entrypoints.cli.common import Db, KeyFile, application, err, out
from puhui.service import admin, federation

federation_app = typer.Typer(
    help="The common mechanism: a node's link to the registry, and the registry itself.",
    no_args_is_help=True,
)


@federation_app.command("identity")
def identity(db: Db = None, key_file: KeyFile = None) -> None:
    """This installation's node code (PUHUI_EXCHANGE), public key and claims-key fingerprint:
    what the registry's operator enrols a node with (a registry's key is what nodes join)."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        me = federation.identity(a)
    out.print(f"node         {me.node}")
    out.print(f"public key   {me.public_key}")
    out.print(f"fingerprint  {me.fingerprint}")


@federation_app.command("join")
def join(
    url: Annotated[str, typer.Argument(help="The registry's base URL, e.g. http://host:8100.")],
    registry_key: Annotated[
        str, typer.Option("--registry-key", help="The registry's public key (hex).")
    ],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Link this node to a registry: from now on what it would credit waits for the registry."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        first = federation.join(a, url, registry_key)
    out.print(f"joined {escape(url)}: records from seq {first} on are registered")


@federation_app.command("sync")
def sync(
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep syncing until interrupted.")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="Seconds.")] = 1.0,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Send this node's pending batches to the registry and apply its answers; receive the
    units other nodes sent, and the registry's figures of every node."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        while True:
            done = federation.sync(a, oversight=True)
            out.print(
                f"{done.batches} batches answered: {done.claims} claims "
                f"({done.first} first, {done.duplicates} duplicates), {done.withdrawn} withdrawn; "
                f"{done.credited} credited, {done.ended_duplicate} ended as duplicates, "
                f"{done.still_held} still held for other reasons"
            )
            if done.units_sent or done.units_returned or done.units_received:
                out.print(
                    f"units: {done.units_sent:,} sent to other nodes, {done.units_returned:,} "
                    f"returned (refused by the registry), {done.units_received:,} received"
                )
            if done.methodologies:
                out.print(
                    "methodology versions: "
                    + ", ".join(f"{ref} {v}" for ref, v in sorted(done.methodologies.items()))
                )
            for ref, verdict in sorted(done.methodologies.items()):
                if verdict == "differs":
                    err.print(
                        f"[yellow]{escape(ref)} differs from the shared catalogue's definition"
                        "[/yellow]: `puhui federation status`, docs/federation.md"
                    )
            for refusal in done.refused:
                err.print(f"[red]refused:[/red] {escape(refusal)}")
            if done.unreachable:
                err.print(f"[yellow]{escape(done.unreachable)}[/yellow]: the batch waits")
            if not follow:
                if done.refused or done.unreachable:
                    raise typer.Exit(1)
                return
            time.sleep(interval)


@federation_app.command("status")
def status(db: Db = None, key_file: KeyFile = None) -> None:
    """What this node has registered, and what waits."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        found = federation.status(a)
    if not found["joined"]:
        out.print("this node has not joined a registry")
        return
    for key, value in found.items():
        if key != "joined":
            out.print(f"{key:24} {escape(str(value))}")


@federation_app.command("enrol")
def enrol(
    code: Annotated[str, typer.Argument(help="The node's code (its exchange's: BJ, SH, GZ…).")],
    key: Annotated[str, typer.Option("--key", help="The node's public key (hex).")],
    fingerprint: Annotated[
        str, typer.Option("--fingerprint", help="The node's claims-key fingerprint.")
    ],
    name: Annotated[str | None, typer.Option("--name", help="The exchange's name.")] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """On the registry: enrol a node."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        federation.enrol(a, code, key, fingerprint, name)
    out.print(f"node {escape(code.upper())} enrolled")


@federation_app.command("nodes")
def nodes(db: Db = None, key_file: KeyFile = None) -> None:
    """On the registry: every node, what it registered, and the duplicates between nodes."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        store = federation.registry(a)
        found = store.nodes()
        between = store.duplicates_between()
    table = Table("node", "name", "batches", "claims", "first", "duplicates", "withdrawn",
                  "records", "credited g", title="nodes")  # fmt: skip
    for n in found:
        table.add_row(
            n["code"],
            escape(n["name"]),
            str(n["batches"]),
            f"{n['claims']:,}",
            f"{n['first']:,}",
            f"{n['duplicates']:,}",
            f"{n['withdrawn']:,}",
            f"{n['tallies'].get('records', 0):,}",
            f"{n['tallies'].get('credited_g', 0):,}",
        )
    out.print(table)
    pairs = Table("node", "duplicates of", "claims", title="duplicates between nodes")
    for a_node, b_node, count in between:
        pairs.add_row(a_node, b_node, f"{count:,}")
    out.print(pairs)
    units = Table("node", "issued", "in its registry", "sent", "received", title="units")
    for u in store.units_between():
        units.add_row(u["node"], *(f"{u[k]:,}" for k in ("issued", "held", "sent", "received")))
    out.print(units)
    versions = Table("methodology", "added by", "computed alike by", "differs at",
                     title="the shared methodology catalogue")  # fmt: skip
    for v in store.catalogue():
        versions.add_row(v["ref"], v["added_by"], ", ".join(v["nodes"]), ", ".join(v["differs"]))
    out.print(versions)


@federation_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8100,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Serve the registry's API (OpenAPI at /openapi.json)."""
    import uvicorn

    from puhui.entrypoints.api.federation import create_registry_app
    from puhui.entrypoints.observability import log_config

    with application(db, key_file) as a:
        admin.check_ready(a)
        api = create_registry_app(a)
        out.print(f"puhui registry on http://{host}:{port}  (key {federation.public_key(a)})")
        uvicorn.run(api, host=host, port=port, log_config=log_config(), access_log=False)
