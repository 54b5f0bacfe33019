"""A TCP proxy in front of a storage server that can stop answering uploads.

    python stallproxy.py LISTEN_PORT TARGET_PORT FOLDER

Forwards every connection on 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT.
While ``FOLDER/stall`` exists, a request that uploads an object (a PUT or
POST that names ``objects/``) is never forwarded nor answered,
as a server that hangs mid-push does; each one held adds a line to
``FOLDER/held``. Version records, manifests and listings pass. When
``FOLDER/stall`` holds text, only the uploads whose request line has that
text in it are held (``partNumber=``: the parts of S3 multipart uploads).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading

WRITE = re.compile(rb"^(PUT|POST) ")
# In the request line (S3, Azure) or in the metadata that opens the body (GCS).
OBJECT = re.compile(rb"(/|%2F)objects(/|%2F)")


def _stalled(folder: str, request: bytes) -> bool:
    try:
        with open(os.path.join(folder, "stall"), "rb") as f:
            only = f.read().strip()
    except FileNotFoundError:
        return False
    return only in request.split(b"\r\n", 1)[0]


def pipe(src: socket.socket, dst: socket.socket, folder: str, upstream: bool) -> None:
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            if upstream and WRITE.match(data) and OBJECT.search(data) and _stalled(folder, data):
                with open(os.path.join(folder, "held"), "a") as f:
                    f.write(data.split(b"\r\n", 1)[0].decode(errors="replace") + "\n")
                threading.Event().wait()  # hold the connection open, forever
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main() -> None:
    listen, target, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen))
    server.listen(256)
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", target))
        except OSError:
            client.close()
            continue
        for src, dst, up in ((client, upstream, True), (upstream, client, False)):
            threading.Thread(target=pipe, args=(src, dst, folder, up), daemon=True).start()


if __name__ == "__main__":
    main()
