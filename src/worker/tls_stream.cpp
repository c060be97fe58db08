#include "worker/tls_stream.hpp"

#include <cstring>
#include <stdexcept>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "py/ssl_context.hpp"

namespace gcorn::worker {
namespace {

// `what`, with OpenSSL's reason for the last failure; clears this thread's error queue (a stale entry would
// make the next SSL_get_error on this pool thread lie).
std::string openssl_error(std::string what) {
    if (unsigned long e = ERR_get_error()) {
        char reason[256];
        ERR_error_string_n(e, reason, sizeof reason);
        what += std::string(": ") + reason;
    }
    ERR_clear_error();
    return what;
}

// ssl_version is the oldest version accepted; the default names keep OpenSSL's (system-wide) minimum.
int minimum_version(const std::string& v) {
    if (v == "TLSv1") return TLS1_VERSION;
    if (v == "TLSv1_1") return TLS1_1_VERSION;
    if (v == "TLSv1_2") return TLS1_2_VERSION;
    if (v == "TLSv1_3") return TLS1_3_VERSION;
    return 0;
}

// ALPN (RFC 7301): "http/1.1" when the client offers it; otherwise the handshake goes on without ALPN, as
// Python's ssl (and so Gunicorn) does.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen, void*) {
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, ours, sizeof ours - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

// A client that spoke plain HTTP to the TLS port gets a plain answer instead of a silent close (as nginx
// does). Best effort and non-blocking: the connection is closed right after.
void answer_plain_http(int fd) {
    static constexpr std::string_view response =
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 49\r\n\r\n"
        "The plain HTTP request was sent to an HTTPS port\n";
    [[maybe_unused]] auto n = ::send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
    char scratch[4096];  // what already arrived, so that close() does not reset the answer away
    while (::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0) {
    }
}

}  // namespace

tls_context::tls_context(const config::settings& s) : ctx_(SSL_CTX_new(TLS_server_method())) {
    if (!ctx_) throw std::runtime_error(openssl_error("cannot create a TLS context"));
    auto fail = [this](const std::string& what) {
        auto message = openssl_error(what);
        SSL_CTX_free(ctx_);
        throw std::runtime_error(message);
    };
    if (int v = minimum_version(s.ssl_version); v && SSL_CTX_set_min_proto_version(ctx_, v) != 1)
        fail("ssl_version " + s.ssl_version);
    if (SSL_CTX_use_certificate_chain_file(ctx_, s.certfile.c_str()) != 1) fail("cannot load certfile " + s.certfile);
    const auto& key = s.keyfile.empty() ? s.certfile : s.keyfile;
    if (SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM) != 1) fail("cannot load keyfile " + key);
    if (SSL_CTX_check_private_key(ctx_) != 1) fail("keyfile " + key + " does not match certfile " + s.certfile);
    if (!s.ciphers.empty() && SSL_CTX_set_cipher_list(ctx_, s.ciphers.c_str()) != 1)
        fail("no usable cipher in ciphers '" + s.ciphers + "'");
    if (!s.ca_certs.empty()) {
        if (SSL_CTX_load_verify_locations(ctx_, s.ca_certs.c_str(), nullptr) != 1)
            fail("cannot load ca_certs " + s.ca_certs);
        if (auto* names = SSL_load_client_CA_file(s.ca_certs.c_str())) SSL_CTX_set_client_CA_list(ctx_, names);
    }
    // cert_reqs as Python's ssl.CERT_NONE / CERT_OPTIONAL / CERT_REQUIRED.
    int verify = s.cert_reqs == 0   ? SSL_VERIFY_NONE
                 : s.cert_reqs == 1 ? SSL_VERIFY_PEER
                                    : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx_, verify, nullptr);
    if (s.cert_reqs && s.ca_certs.empty())
        spdlog::warn("cert_reqs is set but ca_certs is not: no client certificate can be verified");
    static const unsigned char session_context[] = "gcorn";  // session resumption with client certificates
    SSL_CTX_set_session_id_context(ctx_, session_context, sizeof session_context - 1);
    SSL_CTX_set_alpn_select_cb(ctx_, select_alpn, nullptr);
    uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
    if (s.suppress_ragged_eofs) options |= SSL_OP_IGNORE_UNEXPECTED_EOF;  // EOF without close_notify: a clean end
    SSL_CTX_set_options(ctx_, options);
    SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);  // an idle keep-alive connection keeps no record buffers
}

// Python's ssl.SSLContext is a wrapper around an SSL_CTX, and Debian's Python and gcorn load the same libssl3
// (py::ssl_context_handle checks the version), so the hook's context is served as it is: everything the hook set
// (versions, ciphers, certificates, verification, ALPN) is in it. gcorn takes its own reference to the SSL_CTX and
// keeps the Python object alive too, since callbacks it installed (ALPN selection) read the Python object's fields.
// Callbacks that need a Python ssl.SSLSocket behind the connection (sni_callback, keylog) are refused by
// gcorn._hooks.ssl_context before this. What Gunicorn applies per connection rather than in the context is added.
tls_context::tls_context(const config::settings& s, py::object python_context)
    : ctx_(py::ssl_context_handle(python_context, OpenSSL_version_num())), python_(std::move(python_context)) {
    SSL_CTX_up_ref(ctx_);
    if (s.suppress_ragged_eofs) SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);  // wrap_socket's argument
    SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);  // an idle keep-alive connection keeps no record buffers
}

tls_context::~tls_context() { SSL_CTX_free(ctx_); }

tls_session::tls_session(const tls_context& ctx, int fd) : ssl_(SSL_new(ctx.native())), fd_(fd) {
    if (!ssl_ || SSL_set_fd(ssl_, fd) != 1) {
        SSL_free(ssl_);
        throw http::stream_error(http::stream_error::kind::closed, openssl_error("cannot start TLS").c_str());
    }
    SSL_set_accept_state(ssl_);
    // Read what the socket has, not a record header and then its body: one read(2) per request instead of two.
    // Bytes read ahead stay in OpenSSL's buffer, so "is input buffered" is SSL_has_pending, not SSL_pending.
    SSL_set_read_ahead(ssl_, 1);
    BIO* socket_bio = SSL_get_rbio(ssl_);
    BIO_set_callback_arg(socket_bio, reinterpret_cast<char*>(this));
    BIO_set_callback_ex(socket_bio, &tls_session::on_socket_io);
}

// After each read of the socket BIO: did it leave the socket empty?
long tls_session::on_socket_io(BIO* bio, int oper, const char*, size_t len, int, long, int ret, size_t* processed) {
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        auto* self = reinterpret_cast<tls_session*>(BIO_get_callback_arg(bio));
        self->socket_drained_ = ret > 0 ? processed && *processed < len : BIO_should_retry(bio) != 0;
    }
    return ret;
}

tls_session::~tls_session() { SSL_free(ssl_); }

tls_session::want tls_session::handshake() {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl_);
    if (rc == 1) return want::none;
    int e = SSL_get_error(ssl_, rc);
    if (e == SSL_ERROR_WANT_READ) return want::read;
    if (e == SSL_ERROR_WANT_WRITE) return want::write;
    if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_HTTP_REQUEST) answer_plain_http(fd_);
    fail("handshake", e);
}

tls_session::result tls_session::read(std::span<char> into) {
    ERR_clear_error();
    size_t n = 0;
    if (SSL_read_ex(ssl_, into.data(), into.size(), &n) == 1) return {n, want::none};
    int e = SSL_get_error(ssl_, 0);
    if (e == SSL_ERROR_WANT_READ) return {0, want::read};
    if (e == SSL_ERROR_WANT_WRITE) return {0, want::write};
    if (e == SSL_ERROR_ZERO_RETURN) return {0, want::none};  // close_notify (or a ragged EOF, suppress_ragged_eofs)
    fail("read", e);
}

tls_session::result tls_session::write(std::string_view data) {
    ERR_clear_error();
    size_t n = 0;
    if (SSL_write_ex(ssl_, data.data(), data.size(), &n) == 1) return {n, want::none};
    int e = SSL_get_error(ssl_, 0);
    if (e == SSL_ERROR_WANT_READ) return {0, want::read};
    if (e == SSL_ERROR_WANT_WRITE) return {0, want::write};
    fail("write", e);
}

void tls_session::close_notify() noexcept {
    if (broken_ || closed_ || !SSL_is_init_finished(ssl_)) return;
    closed_ = true;
    ERR_clear_error();
    SSL_shutdown(ssl_);  // non-blocking: sends close_notify if the socket takes it; the peer's is not awaited
    ERR_clear_error();
}

bool tls_session::has_pending() const { return SSL_has_pending(ssl_) == 1; }

std::string tls_session::peer_certificate() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (!cert) return {};
    std::string pem;
    if (BIO* bio = BIO_new(BIO_s_mem())) {
        if (PEM_write_bio_X509(bio, cert) == 1) {
            char* data = nullptr;
            long len = BIO_get_mem_data(bio, &data);
            pem.assign(data, size_t(len));
        }
        BIO_free(bio);
    }
    X509_free(cert);
    return pem;
}

// Expected (a client that left, a scanner, a bad certificate): the caller logs it at debug level.
void tls_session::fail(const char* during, int ssl_error) {
    int saved = errno;
    broken_ = true;
    std::string what = std::string("TLS ") + during + " failed";
    if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        what += saved ? std::string(": ") + std::strerror(saved) : std::string(": the peer closed the connection");
    throw http::stream_error(http::stream_error::kind::closed, openssl_error(what).c_str());
}

}  // namespace gcorn::worker
