"""moto's S3 server, with each object write done whole before the next starts.

    python motoserver.py -H HOST -p PORT

moto checks a conditional write (``If-None-Match: *``) and stores the object
in two steps that threads of its server interleave: under load two writers
of the same new key both succeed, where S3 lets exactly one. Writes are
taken one at a time here, as S3 orders them; reads stay concurrent.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any


def main(argv: list[str]) -> None:
    from moto.s3.responses import S3Response
    from moto.server import main as serve

    lock = threading.Lock()
    put = S3Response.put_object

    @functools.wraps(put)
    def put_one_at_a_time(self: Any) -> Any:
        with lock:
            return put(self)

    S3Response.put_object = put_one_at_a_time  # type: ignore[method-assign]
    serve(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
