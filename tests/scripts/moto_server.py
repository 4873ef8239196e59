"""Runs moto in server mode on a free loopback port for the tests.

Prints the port on the first line of stdout, then serves until stdin closes: the test process
holds the other end of the pipe, so moto stops when the tests end, however they end.
"""
import os
import sys

from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(port, flush=True)
try:
    sys.stdin.read()
finally:
    os._exit(0)
