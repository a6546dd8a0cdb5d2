"""A real PostgreSQL for the tests, found or started, never silently missing.

In order: the server named by BLINDSPOTS_TEST_POSTGRES (a postgresql:// URI
whose user may create databases; the value ``initdb`` forces the last way);
else one listening on 127.0.0.1:5432 (user postgres, trust auth); else one
started here from the postgresql package's ``initdb`` + ``pg_ctl`` in a
temporary directory. Each test session gets a fresh database, dropped after;
each test a fresh schema in it. If none can be had the tests that need it
FAIL saying so, unless BLINDSPOTS_TEST_NO_POSTGRES=1 opts out (then they skip).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from typing import Iterator, Optional
from urllib.parse import quote

ENV_URI = "BLINDSPOTS_TEST_POSTGRES"
ENV_OPT_OUT = "BLINDSPOTS_TEST_NO_POSTGRES"
LOOPBACK = "postgresql://postgres@127.0.0.1:5432/postgres"


class NoPostgres(RuntimeError):
    pass


def _reachable(uri: str) -> bool:
    import psycopg
    try:
        psycopg.connect(uri, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def free_port() -> int:
    """A loopback port free right now (a test server's, a Prometheus's, a PostgreSQL's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> Optional[str]:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@contextmanager
def _own_server() -> Iterator[str]:
    """initdb + pg_ctl in a temporary directory; as root, run them as the postgres user."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise NoPostgres("no PostgreSQL server found: set BLINDSPOTS_TEST_POSTGRES to a postgresql:// URI, "
                         "run one on 127.0.0.1:5432, or install the postgresql package (initdb, pg_ctl)")
    root = tempfile.mkdtemp(prefix="blindspots-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:      # initdb refuses to run as root
        runuser = shutil.which("runuser")
        if not runuser:
            raise NoPostgres("running as root without runuser: cannot start a private PostgreSQL")
        as_user = [runuser, "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data, port = os.path.join(root, "data"), free_port()
    subprocess.run([*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """An admin URI (a database to connect to while creating others) of a running server."""
    given = os.environ.get(ENV_URI, "")
    if given and given != "initdb":
        if not _reachable(given):
            raise NoPostgres(f"{ENV_URI} names a server that does not answer")
        yield given
    elif not given and _reachable(LOOPBACK):
        yield LOOPBACK
    else:
        with _own_server() as uri:
            yield uri


def _with_db(uri: str, dbname: str) -> str:
    base, _, query = uri.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{dbname}" + (f"?{query}" if query else "")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database on the server, dropped afterwards; its URI."""
    import psycopg
    with postgres_server() as admin:
        name = f"blindspots_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_db(admin, name)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_schema(database_uri: str) -> str:
    """A new schema in the database; a URI whose connections use it (search_path)."""
    import psycopg
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_uri, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in database_uri else "?"
    return f"{database_uri}{sep}options={quote(f'-csearch_path={name}')}"
