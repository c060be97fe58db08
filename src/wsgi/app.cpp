#include "wsgi/app.hpp"

#include "base/ascii.hpp"
#include "base/uri.hpp"

#include <algorithm>
#include <exception>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "gcorn_build_config.hpp"
#include "http/byte_stream.hpp"
#include "py/gil.hpp"
#include "py/greenlet.hpp"
#include "py/native.hpp"
#include "py/socket.hpp"

namespace gcorn::wsgi {
namespace {

using ascii::iequals;

// Interned keys and the per-process objects every environ shares; built once, after Python starts.
struct shared_objects {
    py::object REQUEST_METHOD = py::interned("REQUEST_METHOD"), SCRIPT_NAME = py::interned("SCRIPT_NAME"),
               PATH_INFO = py::interned("PATH_INFO"), QUERY_STRING = py::interned("QUERY_STRING"),
               RAW_URI = py::interned("RAW_URI"), CONTENT_TYPE = py::interned("CONTENT_TYPE"),
               CONTENT_LENGTH = py::interned("CONTENT_LENGTH"), SERVER_NAME = py::interned("SERVER_NAME"),
               SERVER_PORT = py::interned("SERVER_PORT"), SERVER_PROTOCOL = py::interned("SERVER_PROTOCOL"),
               REMOTE_ADDR = py::interned("REMOTE_ADDR"), REMOTE_PORT = py::interned("REMOTE_PORT"),
               url_scheme = py::interned("wsgi.url_scheme"), input = py::interned("wsgi.input"),
               multithread = py::interned("wsgi.multithread"), close = py::interned("close"),
               multiprocess = py::interned("wsgi.multiprocess"),
               filelike = py::interned("filelike"), fileno = py::interned("fileno"), tell = py::interned("tell"),
               exc_info = py::interned("exc_info"), peercert = py::interned("gcorn.peercert"),
               early_hints = py::interned("wsgi.early_hints"), gunicorn_socket = py::interned("gunicorn.socket");
    py::object socket_module = py::import("socket"), socket_class = py::interned("socket");
    py::object socket_seen, borrowed_class;  // the last socket.socket seen, and its borrowed_socket_class
    py::object http = py::str("http"), https = py::str("https");
    py::object wsgi_module = py::import("gcorn._wsgi");
    py::object make_input = wsgi_module.attr("make_input");
    py::object file_wrapper = wsgi_module.attr("FileWrapper");
    py::object no_body = wsgi_module.attr("NO_BODY");
    py::object request_timeout = py::import("gcorn").attr("RequestTimeout");
    py::object deadline_key = py::interned("gcorn.deadline");
    py::object http_11 = py::interned("HTTP/1.1"), http_10 = py::interned("HTTP/1.0");
    std::pair<std::string_view, py::object> methods[4] = {{"GET", py::interned("GET")}, {"POST", py::interned("POST")},
                                                          {"HEAD", py::interned("HEAD")}, {"PUT", py::interned("PUT")}};
    py::object base_environ = make_base();

    // The usual methods and protocols are shared strings, not a new one per request.
    py::object method(std::string_view m) const {
        for (auto& [name, str] : methods)
            if (m == name) return str;
        return py::str_latin1(m);
    }
    py::object protocol(std::string_view p) const {
        return p == "HTTP/1.1" ? http_11 : p == "HTTP/1.0" ? http_10 : py::str_latin1(p);
    }

    // The constant entries, and a placeholder for every key each request sets: a copy of this dict then has
    // room for the whole environ, so filling it replaces values instead of growing the table (and rehashing it)
    // twice per request. Keys a request may lack (REMOTE_PORT, gunicorn.socket) are deleted when it does.
    py::object make_base() {
        auto env = py::dict();
        for (auto* key : {&REQUEST_METHOD, &SCRIPT_NAME, &PATH_INFO, &QUERY_STRING, &RAW_URI, &SERVER_PROTOCOL,
                          &url_scheme, &SERVER_NAME, &SERVER_PORT, &REMOTE_ADDR, &REMOTE_PORT, &multithread,
                          &multiprocess, &gunicorn_socket, &early_hints})
            py::set_item(env, *key, py::none());
        py::set_item(env, input, no_body);  // a request with a body replaces it
        py::set_item(env, py::str("wsgi.version"), py::tuple({py::integer(1), py::integer(0)}));
        py::set_item(env, py::str("wsgi.errors"), wsgi_module.attr("ErrorStream")());
        py::set_item(env, py::str("wsgi.run_once"), py::boolean(false));
        py::set_item(env, py::str("wsgi.input_terminated"), py::boolean(true));
        py::set_item(env, py::str("wsgi.file_wrapper"), file_wrapper);
        py::set_item(env, py::str("SERVER_SOFTWARE"), py::str("gcorn/" + std::string(GCORN_VERSION)));
        return env;
    }
};

shared_objects& shared() {
    static shared_objects* s = new shared_objects;  // never destroyed: it holds Python references
    return *s;
}

std::string environ_key(std::string_view header) {
    std::string key = "HTTP_";
    key.reserve(5 + header.size());
    for (char c : header) key += c == '-' ? '_' : ascii::upper(c);
    return key;
}

// One request's state, reachable from start_response, write and wsgi.input through their native objects.
// Those objects do not own it and the app may keep them past the request: the destructor detaches them,
// however the request ends, so a later call raises instead of touching this (stack) object.
struct request_ctx {
    http::response_writer& writer;
    http::body_source& body;
    py::object start_response_fn, write_fn, reader, early_hints_fn, deadline_fn;
    const std::function<void(double)>* set_deadline = nullptr;
    bool timed_out = false;         // the app raised gcorn.RequestTimeout
    std::exception_ptr body_error;  // why wsgi.input failed (client gone, malformed chunk): not the app's fault
    bool sendfile;                  // the sendfile setting

    request_ctx(http::response_writer& w, http::body_source& b, bool send_files) : writer(w), body(b), sendfile(send_files) {}
    request_ctx(const request_ctx&) = delete;
    ~request_ctx() {
        for (auto* fn : {&start_response_fn, &write_fn, &reader, &early_hints_fn, &deadline_fn})
            py::recycle(std::move(*fn));
    }

    static py::object start_response(void* self, const py::call_args& args);
    static py::object write(void* self, const py::call_args& args);
    static py::object early_hints(void* self, const py::call_args& args);
    static py::object deadline(void* self, const py::call_args& args);
    static size_t read_body(void* self, std::span<char> into);
};

[[noreturn]] void fail(py::python_error::kind k, const std::string& why) { throw py::python_error(k, why); }

std::string_view checked_latin1_view(const py::object& o, const char* what) {
    auto s = py::latin1_view(o);
    if (!s) fail(py::python_error::kind::type_error, std::string(what) + " must be a str of latin-1 characters");
    return *s;
}

// environ["gcorn.deadline"](seconds): the request's deadline is now + seconds; None or <= 0 removes it.
py::object request_ctx::deadline(void* self, const py::call_args& args) {
    auto& c = *static_cast<request_ctx*>(self);
    if (args.size() != 1) fail(py::python_error::kind::type_error, "gcorn.deadline(seconds) takes one argument");
    auto v = args[0];
    double seconds = py::is_none(v) ? 0 : py::to_double(v);
    (*c.set_deadline)(seconds);
    return py::none();
}

// start_response(status, response_headers, exc_info=None), PEP 3333.
py::object request_ctx::start_response(void* self, const py::call_args& args) {
    auto& c = *static_cast<request_ctx*>(self);
    size_t n = args.size();
    py::object exc_info = n > 2 ? args[2] : py::none();
    if (args.has_keywords() && n <= 2) {
        if (auto e = args.keyword(shared().exc_info)) exc_info = e;
    }
    if (n < 2 || n > 3) fail(py::python_error::kind::type_error, "start_response(status, headers, exc_info=None)");
    if (!py::is_none(exc_info)) {
        // PEP 3333 "Error Handling": exc_info is a sys.exc_info() tuple, and once the head is on the wire
        // the app's error can only be re-raised (it then propagates out of the app: the response is cut).
        auto exc = py::item(exc_info, 1);
        if (!py::is_exception(exc)) fail(py::python_error::kind::type_error, "exc_info must come from sys.exc_info()");
        if (c.writer.head_sent()) throw py::python_error(exc);
    } else if (c.writer.started()) {
        fail(py::python_error::kind::assertion_error, "start_response called a second time without exc_info");
    }
    auto status_str = args[0];
    auto status = checked_latin1_view(status_str, "status");
    if (auto why = http::check_status(status); !why.empty())
        fail(py::python_error::kind::value_error, "invalid status " + std::string(status) + ": " + std::string(why));
    auto list = args[1];
    if (!py::is_list_or_tuple(list)) fail(py::python_error::kind::type_error, "headers must be a list");
    // Each field is checked and framed as it comes (no list of copies); one refused leaves the writer unstarted.
    // No Python code runs in this loop, so the views into the app's strings stay valid.
    c.writer.begin(status);
    for (size_t i = 0, count = py::size(list); i < count; ++i) {
        auto pair = py::item(list, i);
        if (!py::is_list_or_tuple(pair) || py::size(pair) != 2)
            fail(py::python_error::kind::type_error, "each header must be a (name, value) tuple");
        auto name_str = py::item(pair, 0), value_str = py::item(pair, 1);
        auto name = checked_latin1_view(name_str, "header name");
        auto value = checked_latin1_view(value_str, "header value");
        if (auto why = c.writer.add_header(name, value); !why.empty())
            fail(py::python_error::kind::value_error, "invalid header " + std::string(name) + ": " + std::string(why));
    }
    c.writer.end_headers();
    if (!c.write_fn) c.write_fn = py::native_function(&request_ctx::write, self);
    return c.write_fn;
}

// The legacy write() callable start_response returns.
py::object request_ctx::write(void* self, const py::call_args& args) {
    auto& c = *static_cast<request_ctx*>(self);
    if (!c.writer.started()) fail(py::python_error::kind::assertion_error, "write() before start_response");
    if (args.size() != 1) fail(py::python_error::kind::type_error, "write() takes one bytes argument");
    auto data = args[0];
    if (!py::is_bytes(data)) fail(py::python_error::kind::type_error, std::string("write() takes bytes, not ") + py::type_name(data));
    c.writer.write(py::bytes_view(data));
    return py::none();
}

// A header name or value for wsgi.early_hints: a latin-1 str, or bytes (taken as latin-1), as Gunicorn accepts.
std::string header_text(const py::object& o, const char* what) {
    if (py::is_bytes(o)) return std::string(py::bytes_view(o));
    return std::string(checked_latin1_view(o, what));
}

// wsgi.early_hints(headers), Gunicorn 25+: a 103 Early Hints response (RFC 8297) with the (name, value) pairs,
// written at once. The fields are checked as start_response's are (no CR/LF: response splitting) before anything
// else, so a bad one raises even where nothing would be sent: to an HTTP/1.0 client, or once the final head is
// out (then the call does nothing, as Gunicorn's).
py::object request_ctx::early_hints(void* self, const py::call_args& args) {
    auto& c = *static_cast<request_ctx*>(self);
    if (args.size() != 1) fail(py::python_error::kind::type_error, "wsgi.early_hints(headers) takes one list");
    http::header_list headers;
    auto it = py::iter(args[0]);
    while (auto pair = py::next(it)) {
        if (!py::is_list_or_tuple(pair) || py::size(pair) != 2)
            fail(py::python_error::kind::type_error, "each early hint must be a (name, value) tuple");
        auto name = header_text(py::item(pair, 0), "header name");
        auto value = header_text(py::item(pair, 1), "header value");
        // The value is not in the message: it may carry data that must not travel further with the exception.
        if (auto why = http::check_header(name, value); !why.empty())
            fail(py::python_error::kind::value_error, "invalid early hint " + name + ": " + std::string(why));
        auto first = value.find_first_not_of(" \t"), last = value.find_last_not_of(" \t");
        headers.emplace_back(std::move(name), first == std::string::npos ? "" : value.substr(first, last - first + 1));
    }
    c.writer.send_early_hints(headers);
    return py::none();
}

// wsgi.input's raw reads. The app sees a failure as OSError; the C++ error is kept so that, once the app
// gives up, the client gets what the http layer says (400 for a bad chunk, a quiet close if it left).
size_t request_ctx::read_body(void* self, std::span<char> into) {
    auto& c = *static_cast<request_ctx*>(self);
    try {
        return c.body.read(into);
    } catch (...) {
        c.body_error = std::current_exception();
        throw;
    }
}

// Sends a wsgi.file_wrapper over a regular file with sendfile(2), from the file's current position
// (PEP 3333 "Optional Platform-Specific File Handling"); false to fall back to iteration.
bool send_file_wrapper(const py::object& result, http::response_writer& writer) {
    auto& sh = shared();
    int fd = -1;
    long long offset = 0;
    try {
        auto filelike = result.attr(sh.filelike);
        fd = int(py::to_integer(filelike.attr(sh.fileno)()));
        offset = py::to_integer(filelike.attr(sh.tell)());
    } catch (const py::python_error&) {
        return false;  // BytesIO and friends: no descriptor
    }
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || offset > st.st_size) return false;
    uint64_t count = uint64_t(st.st_size - offset);
    writer.set_length_hint(count);
    writer.write_file(fd, off_t(offset), count);
    return true;
}

[[noreturn]] void not_started() { fail(py::python_error::kind::assertion_error, "start_response was not called"); }
[[noreturn]] void not_bytes(const py::object& chunk) {
    fail(py::python_error::kind::type_error, std::string("the response must yield bytes, not ") + py::type_name(chunk));
}

// Writes the iterable the app returned; strings are refused as PEP 3333 requires bytes.
void send_result(const py::object& result, http::response_writer& writer, bool sendfile) {
    auto& sh = shared();
    if (sendfile && py::type_of(result).is(sh.file_wrapper) && writer.started() && send_file_wrapper(result, writer))
        return;
    if (py::is_list_or_tuple(result)) {
        size_t n = py::size(result);
        uint64_t total = 0;
        for (size_t i = 0; i < n; ++i) {
            auto chunk = py::item(result, i);
            if (!py::is_bytes(chunk)) not_bytes(chunk);
            total += py::bytes_view(chunk).size();
        }
        if (!writer.started()) not_started();
        writer.set_length_hint(total);  // the whole body is known: Content-Length instead of chunked
        for (size_t i = 0; i < n; ++i) writer.write(py::bytes_view(py::item(result, i)));
        return;
    }
    auto it = py::iter(result);
    while (auto chunk = py::next(it)) {
        if (!py::is_bytes(chunk)) not_bytes(chunk);
        if (!writer.started()) not_started();
        writer.write(py::bytes_view(chunk));  // streamed as produced, never buffered whole
    }
    // An empty body still needs a status (PEP 3333: start_response before the iterable is exhausted).
    if (!writer.started()) not_started();
}

// PEP 3333: the iterable's close() is called once per request, however the request ended.
void close_result(const py::object& result, const http::request_head& head) noexcept {
    if (!result || py::is_list_or_tuple(result)) return;  // (exactly) a list or a tuple has no close()
    try {
        if (auto close = result.attr_or_null(shared().close)) close();
    } catch (const py::python_error& e) {
        spdlog::error("Error closing the response of {} {}\n{}", head.method, head.target, e.traceback());
    } catch (const std::exception& e) {
        spdlog::error("Error closing the response of {} {}: {}", head.method, head.target, e.what());
    }
}

// A response gcorn writes itself; it replaces whatever the app started (nothing of it was sent).
void send_plain(http::response_writer& writer, const char* status, std::string_view body) {
    writer.start(status, {{"Content-Type", "text/plain"}});
    writer.set_length_hint(body.size());  // not a length the app's list body left behind
    writer.write(body);
    writer.finish();
}

// A header by which the front end says it spoke TLS (secure_scheme_headers: Gunicorn's names and values).
bool forwarded_https(const http::header_list& headers, const std::vector<std::pair<std::string, std::string>>& secure) {
    for (auto& [name, value] : headers)
        for (auto& [secure_name, secure_value] : secure)
            if (iequals(name, secure_name) && iequals(value, secure_value)) return true;
    return false;
}

// The environ key of a request header: CONTENT_TYPE and CONTENT_LENGTH bare (PEP 3333 / CGI), others
// HTTP_NAME. Keys of the first names seen are cached interned, so the usual headers cost no new string;
// the cache is bounded so a client inventing names cannot grow it. The GIL (held here) guards it for gthread.
py::object header_key(std::string_view name) {
    struct hash : std::hash<std::string_view> {
        using is_transparent = void;
    };
    // never destroyed, like shared(): its Python references must not be released after Py_Finalize
    static auto& cache = *new std::unordered_map<std::string, py::object, hash, std::equal_to<>>;
    constexpr size_t cache_limit = 256, cached_name_limit = 64;  // entries; bytes of one name
    if (auto it = cache.find(name); it != cache.end()) return it->second;
    auto& sh = shared();
    py::object key = iequals(name, "content-type")     ? sh.CONTENT_TYPE
                     : iequals(name, "content-length") ? sh.CONTENT_LENGTH
                                                       : py::str_latin1(environ_key(name));
    if (cache.size() < cache_limit && name.size() <= cached_name_limit) {
        py::intern(key);
        cache.emplace(name, key);
    }
    return key;
}

// SERVER_NAME and SERVER_PORT: the listening address. A unix socket has no port, so there (as Gunicorn does)
// they come from the Host header, the port defaulting to the scheme's, and URL reconstruction (PEP 3333)
// still gives the proxy's public address.
std::pair<std::string_view, std::string_view> server_address(const connection_info& conn,
                                                              const http::request_head& head, bool https) {
    if (!conn.server_port.empty()) return {conn.server_name, conn.server_port};
    for (auto& [name, value] : head.headers) {
        if (!iequals(name, "host") || value.empty()) continue;
        std::string_view host = value;
        auto colon = host.rfind(':');
        if (colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos)  // not in [v6]
            return {host.substr(0, colon), host.substr(colon + 1)};
        return {host, https ? "443" : "80"};
    }
    return {conn.server_name, conn.server_port};
}

// Strips the SCRIPT_NAME prefix from a decoded path, at a segment boundary; false if the path is not under
// it (then SCRIPT_NAME + PATH_INFO could not rebuild the URL, PEP 3333 "URL Reconstruction"). A request with
// no path (OPTIONS *) is about the whole server, so it reaches the app whatever SCRIPT_NAME is.
bool strip_script_name(std::string& path, std::string_view script) {
    if (script.empty() || path.empty()) return true;
    if (!path.starts_with(script) || (path.size() > script.size() && path[script.size()] != '/')) return false;
    path.erase(0, script.size());
    return true;
}

// Runs the app and writes its response; false if the response had to be cut short. App errors are logged
// and become a 500 while nothing was sent; the client's errors (http_error, stream_error) propagate.
bool respond(const py::object& app, request_ctx& ctx, const py::object& env, py::object& result,
             const http::request_head& head) {
    try {
        result = app({env, ctx.start_response_fn});
        send_result(result, ctx.writer, ctx.sendfile);
        ctx.writer.finish();
        return true;
    } catch (const py::python_error& e) {
        if (ctx.body_error) {
            // wsgi.input failed under the app: the client's fault, answered (or not) by the http layer.
            spdlog::debug("Request body failed under the app: {}", e.what());
            if (!ctx.writer.head_sent()) std::rethrow_exception(ctx.body_error);
            return false;
        }
        // The hub killed this request's greenlet (worker stopping): not the app's error, not a 500.
        if (py::is_greenlet_exit(e)) throw http::stream_error(http::stream_error::kind::cancelled, "greenlet killed");
        if (e.is_instance_of(shared().request_timeout)) {
            ctx.timed_out = true;
            if (ctx.writer.preempted()) {  // the watchdog answered 504 and logged where the app was
                spdlog::debug("Request timeout raised in {} {}", head.method, head.target);
                return false;
            }
            spdlog::error("Request timeout: {} {}{}\n{}", head.method, head.target,
                          ctx.writer.head_sent() ? " (response cut short)" : " (answered 504)", e.traceback());
            if (ctx.writer.head_sent()) return false;
            ctx.writer.force_close();
            send_plain(ctx.writer, "504 Gateway Timeout", "Gateway Timeout: the request outlived its deadline\n");
            return true;
        }
        spdlog::error("Error handling request {}\n{}", head.target, e.traceback());
        if (ctx.writer.head_sent()) return false;  // too late for a 500: cut the response short
        ctx.writer.force_close();  // the app may have left the request body half read
        send_plain(ctx.writer, "500 Internal Server Error", "Internal Server Error");
        return true;
    }
}

}  // namespace

client_socket::~client_socket() {
    if (!sock_) return;
    py::gil_acquire gil;  // the last reference may go on the reactor's thread (gthread), which holds no GIL
    if (borrowed_) py::release_socket(sock_);
    else py::close_socket(sock_);
}

const py::object& client_socket::get() {
    if (sock_ || fd_ < 0) return sock_;
    auto& sh = shared();
    // socket.socket as the app sees it (the async class's cooperative one once the stdlib is patched), and its
    // borrowing subclass, made once per class.
    auto cls = sh.socket_module.attr(sh.socket_class);
    if (!cls.is(sh.socket_seen)) {
        sh.borrowed_class = sh.wsgi_module.attr("borrowed_socket_class")({cls});
        sh.socket_seen = cls;
    }
    // family -1: read from the descriptor; SOCK_NONBLOCK: the mode it is in, so Python never blocks on it.
    if (!py::is_none(sh.borrowed_class)) {
        sock_ = py::make_socket(sh.borrowed_class, fd_, SOCK_STREAM | SOCK_NONBLOCK);
        borrowed_ = true;
        return sock_;
    }
    int dup = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) throw py::python_error(py::python_error::kind::os_error, "cannot duplicate the client socket");
    try {
        sock_ = py::make_socket(cls, dup, SOCK_STREAM | SOCK_NONBLOCK);
    } catch (...) {
        ::close(dup);
        throw;
    }
    return sock_;
}

application::application(const config::settings& s)
    : script_name_(s.script_name), multiprocess_(s.workers > 1), sendfile_(s.sendfile) {
    for (auto& f : s.forwarder_headers) script_name_from_header_ |= ascii::trim(f) == "*" || ascii::iequals(ascii::trim(f), "SCRIPT_NAME");
    for (auto& kv : s.secure_scheme_headers) {
        auto eq = kv.find('=');  // validated KEY=VALUE
        secure_scheme_headers_.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    // PEP 3333: SCRIPT_NAME is "" at the root and never ends in '/' (PATH_INFO starts with it).
    while (!script_name_.empty() && script_name_.back() == '/') script_name_.pop_back();
    try {
        auto loader = py::import("gcorn._app");
        if (s.paste.empty()) {
            app_ = loader.attr("load")({py::str(s.wsgi_app)});
        } else {
            auto globals = py::import("builtins").attr("list")();
            for (auto& kv : s.raw_paste_global_conf) globals.attr("append")({py::str(kv)});
            app_ = loader.attr("load_paste")({py::str(s.paste), globals});
        }
        shared();
    } catch (const py::python_error& e) {
        // The loader's AppImportError is a one-liner; anything else gets its traceback.
        try {
            auto formatted = py::import("gcorn._app").attr("format_error")({e.value()});
            bool app_error = py::str_of(py::type_of(e.value()).attr("__name__")) == "AppImportError";
            throw load_error(py::str_of(py::item(formatted, 0)), py::str_of(py::item(formatted, 1)), app_error);
        } catch (const py::python_error&) {
            throw load_error(e.what(), e.traceback(), false);
        }
    }
}

struct environ_cache::state {
    // The shared entries, this connection's own and the last request's: what the next request copies. (Only this
    // one dict per connection: new header fields rebuild it from the shared template, which keeps an idle
    // connection's memory low.)
    py::object last;
    // What `last` was filled from, to tell what the next request changes.
    std::string method, protocol, target, script_name;
    http::header_list headers;
    // Lending: while the apps leave the dict they get as they got it and keep no reference to it once the request
    // is over, the next request gets `last` itself instead of a copy (no copy, no deallocation; the entries of the
    // request before that are not the connection's are set again or taken out). Once an app changes or keeps it,
    // the dict is the app's, `last` is built anew and the connection's requests get copies from then on.
    bool lend = true;
    uint64_t lent_version = 0;  // last's stamp when its app got it; 0: not lent since
    bool lent_input = false, lent_deadline = false;  // per-request entries the last app saw in it
};

environ_cache::environ_cache() noexcept = default;
environ_cache::environ_cache(environ_cache&&) noexcept = default;
environ_cache& environ_cache::operator=(environ_cache&& o) noexcept {
    std::swap(s_, o.s_);  // what this held goes with `o`
    return *this;
}
environ_cache::~environ_cache() {
    if (!s_) return;
    py::gil_acquire gil;  // the connection may end on the reactor's thread (gthread), which holds no GIL
    s_.reset();
}

// The entries every request on `conn` shares, over the per-process template. A header-dependent entry (a trusted
// proxy's scheme, a unix socket's SERVER_NAME from Host) is left to make_environ.
py::object application::connection_environ(connection_info& conn) const {
    auto& sh = shared();
    auto env = py::copy_dict(sh.base_environ);
    py::set_item(env, sh.SCRIPT_NAME, py::str_latin1(script_name_));
    py::set_item(env, sh.url_scheme, conn.https ? sh.https : sh.http);
    if (!conn.server_port.empty()) {
        py::set_item(env, sh.SERVER_NAME, py::str_latin1(conn.server_name));
        py::set_item(env, sh.SERVER_PORT, py::str_latin1(conn.server_port));
    }
    py::set_item(env, sh.REMOTE_ADDR, py::str_latin1(conn.remote_addr));
    if (!conn.remote_addr.empty())  // a unix socket's peer has no port
        py::set_item(env, sh.REMOTE_PORT, py::str_latin1(std::to_string(conn.remote_port)));
    else
        py::del_item(env, sh.REMOTE_PORT);
    py::set_item(env, sh.multithread, py::boolean(conn.multithread));
    py::set_item(env, sh.multiprocess, py::boolean(multiprocess_));
    if (!conn.peer_cert.empty()) py::set_item(env, sh.peercert, py::str_latin1(conn.peer_cert));
    bool has_socket = false;
    try {
        if (auto& sock = conn.socket.get()) py::set_item(env, sh.gunicorn_socket, sock), has_socket = true;
    } catch (const py::python_error& e) {  // out of descriptors: the requests are still served, without it
        spdlog::warn("environ['gunicorn.socket'] could not be made: {}", e.what());
    }
    if (!has_socket) py::del_item(env, sh.gunicorn_socket);
    return env;
}

// The CGI part of environ (PEP 3333 "environ Variables"); null if the path is not under SCRIPT_NAME.
py::object application::make_environ(connection_info& conn, const http::request_head& head) const {
    auto& sh = shared();
    auto& cache = conn.environ.s_;
    if (!cache) cache = std::make_unique<environ_cache::state>();
    auto& st = *cache;
    if (st.lent_version) {  // `last` went to the last request's app: did it come back as it went?
        if (!take_back(st, 1)) st.lend = false, st.last = py::object();  // the app's now: rebuilt, then copied
        st.lent_version = 0;
        st.lent_input = st.lent_deadline = false;
    }
    // forwarder_headers: a trusted front end mounting the app under a prefix says so with a SCRIPT_NAME header.
    std::string_view script_name = script_name_;
    if (script_name_from_header_ && conn.trusted_proxy)
        for (auto& [name, value] : head.headers)
            if (ascii::iequals(name, "SCRIPT_NAME")) script_name = value;
    while (script_name.ends_with('/')) script_name.remove_suffix(1);

    // A new target, or new header fields, and the entries made from them are set again; what the last request
    // on this connection sent as well keeps its objects. The fields decide the scheme and a unix socket's address.
    bool new_fields = !st.last || head.headers != st.headers;
    bool new_target = new_fields || head.target != st.target || script_name != st.script_name;
    std::string path;
    std::string_view query;
    if (new_target) {
        std::string_view target = uri::path_and_query(head.target);
        auto qmark = target.find('?');
        if (qmark != std::string_view::npos) query = target.substr(qmark + 1);
        // PEP 3333: PATH_INFO is the URL-decoded path, as bytes decoded latin-1.
        path = uri::percent_decode(target.substr(0, qmark));
        if (!strip_script_name(path, script_name)) return {};
    }
    if (new_fields) {
        st.last = connection_environ(conn);
        st.script_name = script_name_;  // what connection_environ set
        bool https = conn.https || (conn.trusted_proxy && forwarded_https(head.headers, secure_scheme_headers_));
        if (https) py::set_item(st.last, sh.url_scheme, sh.https);
        if (conn.server_port.empty()) {
            auto [server_name, server_port] = server_address(conn, head, https);
            py::set_item(st.last, sh.SERVER_NAME, py::str_latin1(server_name));
            py::set_item(st.last, sh.SERVER_PORT, py::str_latin1(server_port));
        }
        for (auto& [name, value] : head.headers) {
            auto key = header_key(name);
            // Repeated fields are one comma-separated list (RFC 9110 §5.3).
            if (auto first = py::get_item(st.last, key))  // (no HTTP_ or CONTENT_ key in the template)
                py::set_item(st.last, key, py::str_latin1(*py::latin1(first) + "," + value));
            else
                py::set_item(st.last, key, py::str_latin1(value));
        }
        st.headers = head.headers;
    }
    if (new_fields || head.method != st.method) {
        py::set_item(st.last, sh.REQUEST_METHOD, sh.method(head.method));
        st.method = head.method;
    }
    if (auto protocol = head.sent_protocol(); new_fields || protocol != st.protocol) {
        py::set_item(st.last, sh.SERVER_PROTOCOL, sh.protocol(protocol));
        st.protocol = protocol;
    }
    if (new_target) {
        if (script_name != st.script_name) py::set_item(st.last, sh.SCRIPT_NAME, py::str_latin1(script_name));
        auto raw = py::str_latin1(head.target);
        py::set_item(st.last, sh.RAW_URI, raw);
        py::set_item(st.last, sh.PATH_INFO, path == head.target ? raw : py::str_latin1(path));  // "/": one str
        py::set_item(st.last, sh.QUERY_STRING, py::str_latin1(query));
        st.target = head.target;
        st.script_name = script_name;
    }
    // A Python without dict version stamps (3.12 deprecates them) could never tell that the app left it alone.
    if (st.lend && py::dict_version(st.last) == 0) st.lend = false;
    return st.lend ? st.last : py::copy_dict(st.last);
}

// If the lent `last` is as its app got it and only `references` hold it: the entries handle() set for that request
// only go back to what connection_environ and the template have (wsgi.early_hints is set by every request that gets
// the dict), and the dict is stamped again. False if the app changed or kept it.
bool application::take_back(environ_cache::state& st, size_t references) const {
    if (!py::unshared_and_unchanged(st.last, st.lent_version, references)) return false;
    auto& sh = shared();
    if (st.lent_input) py::set_item(st.last, sh.input, sh.no_body);
    if (st.lent_deadline) py::del_item(st.last, sh.deadline_key);
    st.lent_input = st.lent_deadline = false;
    st.lent_version = py::dict_version(st.last);
    return true;
}

outcome application::handle(connection_info& conn, const http::request_head& head, http::body_source& body,
                            http::response_writer& writer) const {
    outcome out;
    auto env = make_environ(conn, head);
    if (!env) {
        send_plain(writer, "404 Not Found", "Not Found");
        return out;
    }
    auto& sh = shared();
    request_ctx ctx(writer, body, sendfile_);
    if (head.has_body()) {  // (without one, wsgi.input is the template's NO_BODY)
        ctx.reader = py::native_reader(&request_ctx::read_body, &ctx);
        py::set_item(env, sh.input, sh.make_input({ctx.reader}));
    }
    ctx.start_response_fn = py::native_function(&request_ctx::start_response, &ctx);
    ctx.early_hints_fn = py::native_function(&request_ctx::early_hints, &ctx);
    py::set_item(env, sh.early_hints, ctx.early_hints_fn);
    if (conn.set_deadline) {
        ctx.set_deadline = conn.set_deadline;
        ctx.deadline_fn = py::native_function(&request_ctx::deadline, &ctx);
        py::set_item(env, sh.deadline_key, ctx.deadline_fn);
    }
    if (auto& st = *conn.environ.s_; env.is(st.last)) {  // lent: stamped now, before any Python code sees it
        st.lent_input = head.has_body();
        st.lent_deadline = conn.set_deadline != nullptr;
        st.lent_version = py::dict_version(env);
    }

    // Call the app and send what it returns. Its close() comes after the response is complete (so the
    // client does not wait for it), and also when the client left or the app failed.
    py::object result;
    try {
        if (pre_request_) pre_request_({env});  // the hook logs its own errors
        out.aborted = !respond(app_, ctx, env, result, head);
    } catch (...) {
        close_result(result, head);
        throw;
    }
    close_result(result, head);
    result = py::object();  // a generator's frame may hold the environ: let go before take_back counts
    out.timed_out = ctx.timed_out;
    if (post_request_) run_post_request(env, writer);
    // A lent dict nobody else holds gives back its body reader (and its 64 KiB buffer) now, not at the connection's
    // next request: an idle connection would keep it. Held by `last` and `env`; otherwise the next request decides.
    if (auto& st = *conn.environ.s_; env.is(st.last) && (st.lent_input || st.lent_deadline)) take_back(st, 2);
    out.environ = std::move(env);
    return out;
}

void application::run_post_request(const py::object& env, const http::response_writer& writer) const {
    try {
        auto headers = py::import("builtins").attr("list")();
        for (auto& [name, value] : writer.headers())
            headers.attr("append")({py::tuple({py::str_latin1(name), py::str_latin1(value)})});
        post_request_({env, py::str_latin1(writer.status()), headers});
    } catch (const py::python_error& e) {
        spdlog::error("post_request hook failed: {}", e.what());
    }
}

std::string environ_lookup(const void* ctx, std::string_view key) {
    auto& env = *static_cast<const py::object*>(ctx);
    if (!env) return "-";  // no app call (e.g. a path outside SCRIPT_NAME)
    try {
        if (auto v = py::get_item(env, py::str(key))) return py::str_of(v);
        // As Gunicorn's %({key}e)s: the key's case does not matter (it lower-cases both sides).
        for (auto it = py::iter(env); auto k = py::next(it);)
            if (py::is_str(k) && ascii::iequals(py::str_of(k), key)) return py::str_of(py::get_item(env, k));
        return "-";
    } catch (const py::python_error&) {
        return "-";
    }
}

}  // namespace gcorn::wsgi
