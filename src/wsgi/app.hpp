// PEP 3333 for gcorn: load the application, and run one request through it (environ, start_response,
// the response iterable) onto an http::response_writer. Uses py/ for every Python call; no Asio, no Beast.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "config/settings.hpp"
#include "http/request.hpp"
#include "http/response_writer.hpp"
#include "py/object.hpp"

namespace gcorn::wsgi {

// The application could not be loaded. `what()` is the one-line reason; `traceback` may be empty.
struct load_error : std::runtime_error {
    load_error(const std::string& reason, std::string tb, bool import_error)
        : std::runtime_error(reason), traceback(std::move(tb)), app_error(import_error) {}
    std::string traceback;
    bool app_error;  // an AppImportError (exit code 4) rather than an exception while importing (3)
};

// environ["gunicorn.socket"] (Gunicorn passes its client socket there): a socket.socket for the connection, made at
// its first request. It shares the connection's descriptor, as Gunicorn's does, but is of a subclass whose close()
// lets go of the descriptor instead of closing it (gcorn._wsgi.borrowed_socket_class), and when the connection ends
// it is detached, whoever still holds it: nothing the app does with it through the socket API (close(), `with`, a
// reference kept past the request) can close gcorn's descriptor, which the next accept could reuse for another
// client. (os.close(sock.fileno()) or detach() still could, as in Gunicorn.) Where socket.socket is not built on
// the stdlib's class (gevent's wrapper), the socket is made over a dup() of the descriptor instead, at the price of
// a second descriptor per connection. Non-blocking, as gcorn's own socket is. On a TLS connection it is the TCP
// socket under TLS: for getpeername(), fileno(), setsockopt(), not for I/O.
class client_socket {
public:
    explicit client_socket(int fd = -1) noexcept : fd_(fd) {}
    client_socket(client_socket&& o) noexcept : fd_(o.fd_), sock_(std::move(o.sock_)), borrowed_(o.borrowed_) {}
    client_socket& operator=(client_socket&& o) noexcept {  // what this held goes with `o`
        std::swap(fd_, o.fd_);
        std::swap(sock_, o.sock_);
        std::swap(borrowed_, o.borrowed_);
        return *this;
    }
    ~client_socket();  // takes the GIL to release the socket object, only if one was made

    // The socket object, made on first use; null without a descriptor (a unit test's memory stream).
    // PRECONDITION: GIL held. Throws py::python_error.
    const py::object& get();

private:
    int fd_;
    py::object sock_;
    bool borrowed_ = false;  // sock_ is over fd_ itself, not over a dup()
};

// The environ a connection's requests have in common, kept from one request to the next. The connection's own
// entries (REMOTE_ADDR, gunicorn.socket, ...) are set once, at its first request; the entries of the last request
// stay too, and a request that sends the same request line or the same header fields as the one before on its
// connection (the usual case on keep-alive: a client's headers rarely change) gets the same str objects instead of
// new ones. The app may change the dict it gets freely: while the apps on a connection leave it exactly as they got
// it and keep no reference to it past their request, the next request gets the same dict, its entries updated (no
// copy, no deallocation); once one changes or keeps it, that dict is the app's and every later request on the
// connection gets a copy of its own. Only wsgi/ sees inside; its Python references are released with the GIL taken.
class environ_cache {
public:
    environ_cache() noexcept;
    environ_cache(environ_cache&&) noexcept;
    environ_cache& operator=(environ_cache&&) noexcept;
    ~environ_cache();

private:
    friend class application;
    struct state;
    std::unique_ptr<state> s_;
};

// What a worker knows about the connection a request arrived on.
struct connection_info {
    std::string remote_addr;  // "" for unix sockets
    int remote_port = 0;
    std::string server_name, server_port;
    bool trusted_proxy = false;  // the peer may set X-Forwarded-* (forwarded_allow_ips)
    bool multithread = false;
    bool https = false;          // TLS to us (certfile), or to the proxy per its PROXY v2 header: wsgi.url_scheme
    std::string peer_cert;       // the client's TLS certificate (PEM) if it sent one: environ["gcorn.peercert"]
    client_socket socket;        // environ["gunicorn.socket"]
    environ_cache environ;       // what its requests' environs share
    // request_timeout: environ["gcorn.deadline"](seconds) moves the request's deadline (<= 0 or None: none).
    const std::function<void(double)>* set_deadline = nullptr;
};

// What the worker needs after a request, for the access log and keep-alive.
struct outcome {
    bool aborted = false;  // the response could not be completed: close the connection
    bool timed_out = false;  // the app raised gcorn.RequestTimeout (its deadline passed)
    py::object environ;    // for %({var}e)s in the access log
};

class application {
public:
    // Imports `s.wsgi_app`. Throws load_error.
    explicit application(const config::settings& s);

    // Runs one request. Never throws for app errors (they become a 500, or an aborted response,
    // with a logged traceback); http::stream_error propagates when the client is gone.
    outcome handle(connection_info& conn, const http::request_head& head, http::body_source& body,
                   http::response_writer& writer) const;

    // Gunicorn's pre_request(environ) / post_request(environ, status, headers) hooks; null ones are skipped.
    void set_request_hooks(py::object pre, py::object post) {
        pre_request_ = std::move(pre);
        post_request_ = std::move(post);
    }

private:
    py::object make_environ(connection_info& conn, const http::request_head& head) const;
    py::object connection_environ(connection_info& conn) const;
    bool take_back(environ_cache::state& st, size_t references) const;
    void run_post_request(const py::object& env, const http::response_writer& writer) const;

    py::object app_, pre_request_, post_request_;
    std::string script_name_;
    bool script_name_from_header_ = false;  // forwarder_headers lists SCRIPT_NAME
    bool multiprocess_;  // wsgi.multiprocess: more than one worker, as Gunicorn sets it
    bool sendfile_;      // wsgi.file_wrapper over a regular file goes out with sendfile(2)
    std::vector<std::pair<std::string, std::string>> secure_scheme_headers_;  // (name, value that means https)
};

// %({key}e)s lookup for the access log: `ctx` is an outcome's environ.
std::string environ_lookup(const void* ctx, std::string_view key);

}  // namespace gcorn::wsgi
