# Closing a connection with unread input must not reset it and destroy the response still in flight.
import socket
import time

BIG = ("def app(environ, start_response):\n"
       "    body = b'x' * (8 << 20)\n"
       "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
       "    return [body]\n")


def test_pipelined_request_on_a_closing_sync_connection_does_not_truncate(gcorn):
    server = gcorn(None, source=BIG)
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # the response cannot all be in flight at once
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # never read by the sync worker, which closes
        time.sleep(0.5)
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in head
        assert len(body) == 8 << 20
