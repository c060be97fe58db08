#include "http/request_reader.hpp"

#include <algorithm>
#include <cstring>

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include "http/errors.hpp"

namespace gcorn::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

std::string_view trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

// Transfer-Encoding must end in a single "chunked" (RFC 9112 §6.1); content codings before it pass
// through, but the connection closes after the request because the body is not what was framed.
void apply_transfer_encoding(request_head& h, std::string_view value) {
    size_t start = 0;
    bool seen_any = false;
    while (start <= value.size()) {
        auto comma = value.find(',', start);
        auto coding = trim(value.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
        start = comma == std::string_view::npos ? value.size() + 1 : comma + 1;
        if (coding.empty()) continue;
        if (h.chunked) throw http_error(400, "chunked is not the last transfer coding");
        seen_any = true;
        if (iequals(coding, "chunked")) h.chunked = true;
        else if (iequals(coding, "gzip") || iequals(coding, "x-gzip") || iequals(coding, "deflate") ||
                 iequals(coding, "compress"))
            h.must_close = true;
        else throw http_error(501, "unsupported transfer coding");
    }
    if (!seen_any) throw http_error(400, "empty Transfer-Encoding");
}

// Beast's parser, with gcorn's field rules (DESIGN §6) in its callbacks and the body copied straight
// into the caller's buffer (the buffer_body pattern).
class parser final : public bhttp::basic_parser<true> {
public:
    request_head head;
    std::span<char> dest;  // where body bytes go during a read
    size_t copied = 0;
    bool in_trailers = false;
    int te_count = 0;

    parser() {
        eager(false);
        body_limit(boost::none);          // bodies stream to the app; no size limit here
        header_limit(std::uint32_t(-1));  // head_scan already enforced gcorn's limits
    }

private:
    void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target, int version,
                         beast::error_code&) override {
        head.method.assign(method.data(), method.size());
        head.target.assign(target.data(), target.size());
        head.version = version;
    }

    void on_response_impl(int, beast::string_view, int, beast::error_code& ec) override {
        ec = bhttp::error::bad_method;  // never called: this is a request parser
    }

    void on_field_impl(bhttp::field f, beast::string_view name, beast::string_view value,
                       beast::error_code& ec) override {
        std::string_view n(name.data(), name.size()), v = trim({value.data(), value.size()});
        if (is_header_done()) return on_trailer(f, n, ec);
        auto seen = [&](std::string_view other) {
            return std::any_of(head.headers.begin(), head.headers.end(),
                               [&](auto& h) { return iequals(h.first, other); });
        };
        if (f == bhttp::field::host || f == bhttp::field::content_type || f == bhttp::field::content_length) {
            if (seen(n)) throw http_error(400, "duplicate " + std::string(n));
        }
        if (f == bhttp::field::content_length) {
            if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
                throw http_error(400, "Content-Length is not a number");
            head.content_length = std::stoull(std::string(v));
        }
        if (f == bhttp::field::transfer_encoding) apply_transfer_encoding(head, v);
        if (f == bhttp::field::expect && iequals(v, "100-continue")) head.expect_continue = true;
        // A '_' would alias '-' in the environ (HTTP_X_FORWARDED_FOR): drop such names (DESIGN §6).
        if (n.find('_') != std::string_view::npos) return;
        head.headers.emplace_back(std::string(n), std::string(v));
    }

    // RFC 9110 §6.5.1: trailers must not carry framing, routing or authentication fields.
    void on_trailer(bhttp::field f, std::string_view, beast::error_code&) {
        using bf = bhttp::field;
        if (f == bf::content_length || f == bf::transfer_encoding || f == bf::host || f == bf::content_type ||
            f == bf::connection || f == bf::trailer || f == bf::te || f == bf::expect || f == bf::authorization)
            throw http_error(400, "forbidden trailer field");
    }

    void on_header_impl(beast::error_code&) override {
        if (head.content_length && (head.chunked || head.must_close || seen_te()))
            throw http_error(400, "both Content-Length and Transfer-Encoding");
        if (head.chunked && head.version == 10) throw http_error(400, "chunked on HTTP/1.0");
        if (seen_te() && !head.chunked) throw http_error(400, "Transfer-Encoding does not end in chunked");
        head.keep_alive = keep_alive() && !head.must_close;
    }

    bool seen_te() const {
        return std::any_of(head.headers.begin(), head.headers.end(),
                           [](auto& h) { return iequals(h.first, "transfer-encoding"); });
    }

    void on_body_init_impl(boost::optional<std::uint64_t> const&, beast::error_code&) override {}

    size_t on_body_impl(beast::string_view body, beast::error_code& ec) override {
        size_t n = std::min(body.size(), dest.size() - copied);
        if (n == 0) {
            ec = bhttp::error::need_buffer;
            return 0;
        }
        std::memcpy(dest.data() + copied, body.data(), n);
        copied += n;
        return n;
    }

    void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}

    size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code& ec) override {
        return on_body_impl(body, ec);
    }

    void on_finish_impl(beast::error_code&) override {}
};

}  // namespace

struct request_reader::impl {
    byte_stream& stream;
    limits lim;
    std::chrono::milliseconds body_timeout;
    std::string buf;       // received bytes; [pos, buf.size()) not yet consumed
    size_t pos = 0;
    std::optional<parser> p;
    bool continue_pending = false;

    impl(byte_stream& s, const limits& l, std::chrono::milliseconds t) : stream(s), lim(l), body_timeout(t) {}

    std::string_view pending() const { return std::string_view(buf).substr(pos); }

    // Appends what the socket has; false at end of stream.
    bool fill(deadline until) {
        if (pos > 0 && pos == buf.size()) buf.clear(), pos = 0;
        else if (pos > 65536) buf.erase(0, pos), pos = 0;  // keep the buffer from growing with pipelining
        size_t old = buf.size();
        buf.resize(old + 16384);
        size_t n = 0;
        try {
            n = stream.read_some(std::span(buf.data() + old, 16384), until);
        } catch (...) {
            buf.resize(old);
            throw;
        }
        buf.resize(old + n);
        return n > 0;
    }

    // One step of body parsing: feed what is buffered, or read more when Beast needs more. False at EOF.
    bool step(deadline until) {
        size_t used = pending().empty() ? 0 : put(pending());
        pos += used;
        if (used == 0 && !p->is_done() && p->copied == 0) return fill(until);
        return true;
    }

    // Feeds bytes to Beast; returns bytes consumed. Beast's own errors are malformed requests.
    size_t put(std::string_view bytes) {
        beast::error_code ec;
        size_t n = p->put(boost::asio::const_buffer(bytes.data(), bytes.size()), ec);
        if (ec && ec != bhttp::error::need_more && ec != bhttp::error::need_buffer)
            throw http_error(400, "malformed request: " + ec.message());
        return n;
    }
};

request_reader::request_reader(byte_stream& stream, const limits& lim, std::chrono::milliseconds body_timeout)
    : impl_(std::make_unique<impl>(stream, lim, body_timeout)) {}

request_reader::~request_reader() = default;

bool request_reader::body_complete() const { return !impl_->p || impl_->p->is_done(); }

bool request_reader::has_buffered_bytes() const { return !impl_->pending().empty(); }

std::optional<request_head> request_reader::read_head(deadline idle_until, deadline head_until) {
    auto& m = *impl_;
    head_scan scan;
    // Wait for the first byte with the idle (keep-alive) deadline; a quiet close here is normal.
    if (m.pending().empty()) {
        try {
            if (!m.fill(idle_until)) return std::nullopt;
        } catch (const stream_error& e) {
            if (e.why == stream_error::kind::timeout || e.why == stream_error::kind::closed) return std::nullopt;
            throw;
        }
    }
    while (scan.scan(m.pending(), m.lim) == head_scan::result::need_more) {
        if (!m.fill(head_until)) throw stream_error(stream_error::kind::closed, "connection closed mid-head");
    }
    m.pos += scan.skip;
    m.p.emplace();
    auto head_bytes = m.pending().substr(0, scan.head_end - scan.skip);
    size_t used = m.put(head_bytes);
    if (!m.p->is_header_done() || used != head_bytes.size()) throw http_error(400, "malformed request head");
    m.pos += used;
    m.p->eager(true);  // from here on, one put() may run through several chunks
    m.continue_pending = m.p->head.expect_continue && m.p->head.version == 11 && !m.p->is_done();
    return std::move(m.p->head);
}

size_t request_reader::read(std::span<char> into) {
    auto& m = *impl_;
    if (!m.p || m.p->is_done() || into.empty()) return 0;
    auto until = clock::now() + m.body_timeout;
    if (m.continue_pending) {
        // RFC 9110 §10.1.1: the client waits for this before sending the body; send it on first read.
        static constexpr std::string_view cont[] = {"HTTP/1.1 100 Continue\r\n\r\n"};
        m.stream.write_all(cont, until);
        m.continue_pending = false;
    }
    m.p->dest = into;
    m.p->copied = 0;
    while (m.p->copied == 0 && !m.p->is_done()) {
        if (!m.step(until)) throw stream_error(stream_error::kind::closed, "body truncated");
    }
    return m.p->copied;
}

bool request_reader::discard_body(size_t max_bytes, deadline until) {
    auto& m = *impl_;
    if (!m.p || m.p->is_done()) return true;
    if (m.continue_pending) return false;  // the client has not sent the body; do not invite it now
    char scratch[16384];
    size_t total = 0;
    try {
        while (!m.p->is_done()) {
            m.p->dest = std::span(scratch);
            m.p->copied = 0;
            if (!m.step(until)) return false;
            if ((total += m.p->copied) > max_bytes) return false;
        }
    } catch (const std::exception&) {
        return false;
    }
    return true;
}

}  // namespace gcorn::http
