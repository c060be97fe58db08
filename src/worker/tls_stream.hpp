// TLS for every worker class (issue 6): OpenSSL over the connection's non-blocking socket, as a byte_stream
// whose waits go to the same Waiter as socket_stream's (poll with the GIL released for sync and gthread, a
// parked greenlet for async), so a handshake or a slow TLS peer never blocks other connections.
#pragma once
#include <algorithm>
#include <cerrno>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <vector>

#include "config/settings.hpp"
#include "http/byte_stream.hpp"
#include "py/object.hpp"
#include "worker/waiter.hpp"

struct bio_st;
struct ssl_st;
struct ssl_ctx_st;

namespace gcorn::worker {

// certfile, keyfile, ca_certs, cert_reqs, ciphers, ssl_version and ALPN "http/1.1" (or the ssl_context hook's
// context), loaded once per worker boot: HUP starts fresh workers with re-read settings, which reloads them.
class tls_context {
public:
    explicit tls_context(const config::settings& s);  // throws std::runtime_error naming what failed
    // Gunicorn's ssl_context hook made the context in Python: serve with the ssl.SSLContext's own OpenSSL context.
    // Throws py::python_error if it is not one gcorn can use. PRECONDITION: GIL held, here and when destroyed.
    tls_context(const config::settings& s, py::object python_context);
    ~tls_context();
    tls_context(const tls_context&) = delete;
    tls_context& operator=(const tls_context&) = delete;
    ssl_ctx_st* native() const { return ctx_; }

private:
    ssl_ctx_st* ctx_;
    py::object python_;  // the ssl.SSLContext: OpenSSL callbacks it installed (ALPN) read its fields
};

// One connection's TLS state, never waiting: every call says what it would need to go on.
// Failures throw http::stream_error (an expected end of the connection, logged at debug level).
class tls_session {
public:
    enum class want { none, read, write };
    struct result {
        size_t bytes;
        want more;  // none with bytes == 0 after a read: end of stream
    };

    tls_session(const tls_context& ctx, int fd);
    ~tls_session();
    tls_session(const tls_session&) = delete;
    tls_session& operator=(const tls_session&) = delete;

    want handshake();
    result read(std::span<char> into);
    result write(std::string_view data);
    void close_notify() noexcept;           // best effort, once; skipped after a failure
    bool has_pending() const;               // input read from the socket (decrypted or not) not read yet
    // The socket read under the last read() drained it (EAGAIN, or fewer bytes than OpenSSL asked for): the
    // connection's next idle wait need not re-arm (hub/edge_socket.hpp).
    bool socket_drained() const { return socket_drained_; }
    std::string peer_certificate() const;   // the client's certificate as PEM, or ""

private:
    [[noreturn]] void fail(const char* during, int ssl_error);
    static long on_socket_io(bio_st* bio, int oper, const char*, size_t len, int, long, int ret, size_t* processed);
    ssl_st* ssl_;
    int fd_;
    bool broken_ = false, closed_ = false, socket_drained_ = false;
};

// The part of a TLS stream a worker needs before the first request, whatever its Waiter.
class tls_stream_base : public http::byte_stream {
public:
    virtual void handshake(http::deadline until) = 0;
    tls_session& session() { return *session_; }

protected:
    explicit tls_stream_base(std::unique_ptr<tls_session> s) : session_(std::move(s)) {}
    std::unique_ptr<tls_session> session_;
};

template <class Waiter>
class tls_stream final : public tls_stream_base {
public:
    tls_stream(int fd, std::unique_ptr<tls_session> s, Waiter waiter)
        : tls_stream_base(std::move(s)), fd_(fd), waiter_(std::move(waiter)) {}
    ~tls_stream() override { session_->close_notify(); }

    void handshake(http::deadline until) override {
        for (auto w = session_->handshake(); w != tls_session::want::none; w = session_->handshake()) wait(w, until);
    }

    size_t read_some(std::span<char> into, http::deadline until) override {
        for (;;) {
            auto r = session_->read(into);
            if (r.more == tls_session::want::none) {
                note_read(waiter_, session_->socket_drained() && !session_->has_pending());
                return r.bytes;
            }
            wait(r.more, until);
        }
    }

    // Small responses leave as one TLS record (head and body together); large pieces go as they are.
    void write_all(std::span<const std::string_view> pieces, http::deadline until) override {
        size_t total = 0;
        for (auto& p : pieces) total += p.size();
        if (pieces.size() > 1 && total <= coalesce_limit) {
            std::string joined;
            joined.reserve(total);
            for (auto& p : pieces) joined += p;
            return write(joined, until);
        }
        for (auto& p : pieces) write(p, until);
    }

    // No sendfile(2) through userspace TLS: the file is read and encrypted a chunk at a time.
    size_t send_file(int fd, off_t offset, size_t count, http::deadline until) override {
        std::vector<char> chunk(std::min(count, file_chunk));
        ssize_t n;
        while ((n = ::pread(fd, chunk.data(), chunk.size(), offset)) < 0 && errno == EINTR) {
        }
        if (n < 0) throw http::stream_error(http::stream_error::kind::closed, "cannot read the file");
        write({chunk.data(), size_t(n)}, until);
        return size_t(n);
    }

    // close_notify, then stop sending and drain what the peer still sends (see byte_stream::linger).
    void linger(http::deadline until) override {
        session_->close_notify();
        ::shutdown(fd_, SHUT_WR);
        char scratch[16384];
        try {
            for (size_t total = 0; total < (1u << 20);) {
                ssize_t n = ::recv(fd_, scratch, sizeof scratch, MSG_DONTWAIT);
                if (n > 0) total += size_t(n);
                else if (n == 0 || (errno != EAGAIN && errno != EINTR)) return;
                else if (errno == EAGAIN && !waiter_.wait(fd_, false, until)) return;
            }
        } catch (const http::stream_error&) {
        }
    }

    bool input_pending() override {
        char c;
        return session_->has_pending() || ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
    }

    bool has_buffered_input() const override { return session_->has_pending(); }

    bool wait_socket_readable(http::deadline until) override { return wait_for_input(waiter_, fd_, until); }

    void yield() override { waiter_.yield(); }

private:
    static constexpr size_t coalesce_limit = 16384;  // one TLS record's payload (RFC 8446 §5.1)
    static constexpr size_t file_chunk = 65536;

    void write(std::string_view data, http::deadline until) {
        while (!data.empty()) {
            auto r = session_->write(data);
            if (r.more == tls_session::want::none) data.remove_prefix(r.bytes);
            else wait(r.more, until);
        }
    }

    void wait(tls_session::want w, http::deadline until) {
        if (!waiter_.wait(fd_, w == tls_session::want::write, until))
            throw http::stream_error(http::stream_error::kind::timeout, "timed out");
    }

    int fd_;
    Waiter waiter_;
};

}  // namespace gcorn::worker
