"""Runs spanhouse's ClickHouse DDL and query texts in chdb, a current ClickHouse engine in
process, so that SQL that Debian's old server accepts is also checked against today's ClickHouse.

usage: validate_chdb.py FILE   (FILE: JSON {"statements": [[name, sql], ...]}, run in order)
Prints one line per statement; exits 1 if any fails.
"""

import json
import sys
import tempfile

from chdb import session


def main() -> None:
    with open(sys.argv[1]) as file:
        statements = json.load(file)["statements"]
    failures = 0
    with tempfile.TemporaryDirectory() as directory:
        database = session.Session(directory)
        for name, sql in statements:
            try:
                database.query(sql)
                print(f"ok   {name}")
            except Exception as error:  # chdb raises its own error types
                failures += 1
                print(f"FAIL {name}: {error}\n{sql}")
        print(f"{len(statements) - failures} passed, {failures} failed")
        database.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
