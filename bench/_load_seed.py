"""Experts with API tokens for bench/load.py, written straight into the database.

    python bench/_load_seed.py DATABASE_URL USERNAME...

Prints one JSON object, username -> token, as its last line. Its own process: load.py runs
under gevent (locust), the app's code is not imported there.
"""

import json
import sys

from booking import seed_users

if __name__ == "__main__":
    print(json.dumps(seed_users(sys.argv[1], sys.argv[2:])))
