#!/usr/bin/env python3
"""A TCP relay that delays every byte by a fixed time in each direction.

The kernel on the test machines has no netem qdisc, so tests/netns uses this
to put latency between "hosts" (network namespaces):

    delay_relay.py --listen 10.213.1.1:7101 --target 10.213.1.2:7001 --delay-ms 2

Each chunk read from one side is written to the other no earlier than
--delay-ms after it arrived (order kept, so the link behaves like a wire with
that one-way latency and ample bandwidth). TCP_NODELAY on both sockets keeps
Nagle from adding delays of its own. Prints "RELAYING host:port" once bound.
"""
import argparse
import asyncio
import socket
import sys


def split_address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def no_delay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def pump(reader, writer, delay_s):
    """Copies reader to writer, each chunk held until delay_s after its arrival."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
        while True:
            arrived, data = await queue.get()
            wait = arrived + delay_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(1 << 16)
            queue.put_nowait((loop.time(), data))
            if not data:
                break
        await sender
    except (ConnectionError, asyncio.CancelledError):
        sender.cancel()


async def serve(args):
    target_host, target_port = split_address(args.target)
    delay_s = args.delay_ms / 1000.0

    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        no_delay(client_writer)
        no_delay(upstream_writer)
        await asyncio.gather(pump(client_reader, upstream_writer, delay_s),
                             pump(upstream_reader, client_writer, delay_s),
                             return_exceptions=True)
        for w in (client_writer, upstream_writer):
            w.close()

    host, port = split_address(args.listen)
    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()
    print(f"RELAYING {bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept on")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
