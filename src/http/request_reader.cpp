#include "http/request_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include "base/ascii.hpp"
#include "http/errors.hpp"

namespace gcorn::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

using ascii::iequals;
using ascii::trim;

// Transfer-Encoding must end in a single "chunked" (RFC 9112 §6.1); content codings before it pass
// through, but the connection closes after the request because the body is not what was framed.
void apply_transfer_encoding(request_head& h, std::string_view value) {
    size_t start = 0;
    bool seen_any = false;
    while (start <= value.size()) {
        auto comma = std::min(value.find(',', start), value.size());
        auto coding = trim(value.substr(start, comma - start));
        start = comma + 1;
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

// The fields gcorn's rules single out (DESIGN §6), told by length first. PRECONDITION: `name` is a token.
enum class known { other, host, expect, connection, content_type, content_length, proxy_connection, transfer_encoding };
known classify(std::string_view name) {
    auto is = [&](std::string_view lower) { return ascii::token_iequals(name, lower); };
    switch (name.size()) {
    case 4: return is("host") ? known::host : known::other;
    case 6: return is("expect") ? known::expect : known::other;
    case 10: return is("connection") ? known::connection : known::other;
    case 12: return is("content-type") ? known::content_type : known::other;
    case 14: return is("content-length") ? known::content_length : known::other;
    case 16: return is("proxy-connection") ? known::proxy_connection : known::other;
    case 17: return is("transfer-encoding") ? known::transfer_encoding : known::other;
    default: return known::other;
    }
}

// Field lists handed back by recycle(): a thread parses into the one it used last.
constexpr size_t max_pooled_lists = 64;
constexpr size_t max_pooled_bytes = 8192;  // room a pooled list may keep: its entries' and their strings'
std::vector<header_list>& list_pool() {
    thread_local std::vector<header_list> lists = [] {
        std::vector<header_list> v;
        v.reserve(max_pooled_lists);  // recycle() never allocates
        return v;
    }();
    return lists;
}

// A request head from the bytes head_scan passed (so every line ends in CRLF, has no control byte, and every
// field line has a token name and a colon): one pass over its lines, with gcorn's field rules.
class head_parser {
public:
    head_parser(const limits& lim, const std::vector<std::string>* forwarders) : lim_(lim), forwarders_(forwarders) {}

    // `head` runs from the request line to the empty line's CRLF included; `request_line_end` is where the
    // request line's CRLF starts.
    request_head parse(std::string_view head, size_t request_line_end) {
        request_line(head.substr(0, request_line_end));
        if (auto& pool = list_pool(); !pool.empty()) {
            h_.headers = std::move(pool.back());  // its entries are overwritten in place (field())
            pool.pop_back();
        } else {
            h_.headers.reserve(8);  // one allocation for a usual head, not one per doubling
        }
        size_t end = head.size() - 2;  // the empty line
        std::string folded;
        for (size_t at = request_line_end + 2; at < end;) {
            size_t cr = head.find('\r', at);
            auto line = head.substr(at, cr - at);
            at = cr + 2;
            auto colon = line.find(':');
            auto name = line.substr(0, colon);
            while (name.back() == ' ' || name.back() == '\t') name.remove_suffix(1);  // strip_header_spaces
            auto value = trim(line.substr(colon + 1));
            if (at < end && (head[at] == ' ' || head[at] == '\t')) {
                // permit_obsolete_folding (head_scan refused it otherwise): each continuation's trimmed text joins
                // the value after one SP, as Gunicorn and Beast join it.
                folded.assign(value);
                while (at < end && (head[at] == ' ' || head[at] == '\t')) {
                    size_t next_cr = head.find('\r', at);
                    auto more = trim(head.substr(at, next_cr - at));
                    at = next_cr + 2;
                    if (more.empty()) continue;
                    if (!folded.empty()) folded += ' ';
                    folded.append(more);
                }
                value = folded;
            }
            field(name, value);
        }
        h_.headers.erase(h_.headers.begin() + ptrdiff_t(used_), h_.headers.end());  // a recycled list's surplus
        finish();
        return std::move(h_);
    }

private:
    const limits& lim_;
    const std::vector<std::string>* forwarders_;  // forwarder_headers, when the peer is trusted
    request_head h_;
    size_t used_ = 0;  // fields stored in h_.headers; a recycled list's entries past it are reused or dropped
    bool connection_close_ = false, connection_keep_alive_ = false;
    bool seen_host_ = false, seen_content_type_ = false;
    std::vector<std::string> transfer_codings_;  // Transfer-Encoding values, in order (a folded one is not in the head)

    // head_scan checked its form: METHOD SP TARGET SP HTTP/D.D.
    void request_line(std::string_view line) {
        auto sp1 = line.find(' '), sp2 = line.find(' ', sp1 + 1);
        h_.method.assign(line.substr(0, sp1));
        if (lim_.casefold_method)  // after head_scan checked it, as Gunicorn's casefold_http_method
            for (auto& c : h_.method) c = ascii::upper(c);
        h_.target.assign(line.substr(sp1 + 1, sp2 - sp1 - 1));
        // RFC 9110 §2.5: HTTP/1.x with x > 1 is served as HTTP/1.1 (head_scan let it through); under
        // permit_unconventional_http_version HTTP/0.x is served as 1.0 and 2.0 and above as 1.1, and the version
        // the client sent is kept for SERVER_PROTOCOL.
        char major = line[line.size() - 3], minor = line[line.size() - 1];
        if (major != '1') h_.unconventional_version = line.substr(sp2 + 1);
        h_.version = major == '0' || (major == '1' && minor == '0') ? 10 : 11;
    }

    void field(std::string_view n, std::string_view v) {
        auto f = classify(n);
        // RFC 9112 §3.2 and §6.3: more than one Host or Content-Length is refused; a second Content-Type
        // would let a front end and the app disagree on how to read the body.
        switch (f) {
        case known::host:
            if (std::exchange(seen_host_, true)) throw http_error(400, "duplicate " + std::string(n));
            // RFC 9112 §3.2: a Host with an invalid value is refused like a missing one.
            if (!is_host_port(v)) throw http_error(400, "bad Host");
            break;
        case known::content_type:
            if (std::exchange(seen_content_type_, true)) throw http_error(400, "duplicate " + std::string(n));
            break;
        case known::content_length:
            if (h_.content_length) throw http_error(400, "duplicate " + std::string(n));
            if (!transfer_codings_.empty()) both_framings();
            h_.content_length = parse_content_length(v);
            break;
        case known::transfer_encoding:
            if (h_.content_length) both_framings();
            if (transfer_codings_.empty()) transfer_codings_.reserve(2);
            transfer_codings_.emplace_back(v);  // judged once the head is read (finish)
            break;
        case known::connection: note_connection_options(v); break;
        case known::proxy_connection: note_connection_options(v, false); break;
        case known::expect:
            if (iequals(v, "100-continue")) h_.expect_continue = true;
            break;
        case known::other: break;
        }
        // A '_' would alias '-' in the environ (HTTP_X_FORWARDED_FOR): dropped, unless header_map says to refuse
        // the request or (dangerous, as Gunicorn before 22) to map it anyway (DESIGN §6).
        if (f == known::other && n.find('_') != std::string_view::npos && !forwarded(n)) {
            if (lim_.header_map == underscores::refuse) throw http_error(400, "header name with '_'");
            if (lim_.header_map == underscores::drop) return;
        }
        if (used_ < h_.headers.size()) {
            auto& [name, value] = h_.headers[used_];
            name.assign(n), value.assign(v);  // in the buffers the last request's fields left
        } else {
            h_.headers.emplace_back(std::string(n), std::string(v));
        }
        ++used_;
    }

    // RFC 9112 §6.1: a request with both is a smuggling attempt or a broken intermediary: 400, whatever else is
    // wrong with either field.
    [[noreturn]] static void both_framings() { throw http_error(400, "both Content-Length and Transfer-Encoding"); }

    void finish() {
        for (auto& v : transfer_codings_) apply_transfer_encoding(h_, v);
        // RFC 9112 §6.1: an HTTP/1.0 recipient cannot know chunked, so a 1.0 message claiming it is faulty framing.
        if (h_.chunked && h_.version == 10) throw http_error(400, "chunked on HTTP/1.0");
        // RFC 9112 §6.3 (4): without a final chunked the body length cannot be known: 400 and close.
        if (!transfer_codings_.empty() && !h_.chunked)
            throw http_error(400, "Transfer-Encoding does not end in chunked");
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused (a 1.0 one may omit it).
        if (h_.version == 11 && !seen_host_) throw http_error(400, "missing Host");
        // RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive"; "close" always wins.
        bool persistent = h_.version == 11 || connection_keep_alive_;
        h_.keep_alive = persistent && !connection_close_ && !h_.must_close;
    }

    // forwarder_headers: a trusted front end (forwarded_allow_ips) may set these '_' names (SCRIPT_NAME ...).
    bool forwarded(std::string_view name) const {
        if (!forwarders_) return false;
        for (auto& f : *forwarders_)
            if (trim(f) == "*" || iequals(trim(f), name)) return true;
        return false;
    }

    // RFC 9110 §8.6: Content-Length = 1*DIGIT; no sign, no list (6.3 allows refusing "5, 5" outright).
    static uint64_t parse_content_length(std::string_view v) {
        uint64_t n = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        bool digits = std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (v.empty() || !digits || ec != std::errc() || end != v.data() + v.size())
            throw http_error(400, "Content-Length is not a number");
        return n;
    }

    // RFC 9110 §7.6.1: Connection = #connection-option, a list of tokens (empty elements allowed, RFC 9110 §5.6.1);
    // anything else is refused, for Proxy-Connection too. RFC 9112 §9.3: "close" ends the connection after this
    // response whatever else is listed.
    void note_connection_options(std::string_view v, bool connection = true) {
        for (size_t start = 0; start <= v.size();) {
            auto comma = std::min(v.find(',', start), v.size());
            auto option = trim(v.substr(start, comma - start));
            start = comma + 1;
            if (option.empty()) continue;
            if (!ascii::is_token(option)) throw http_error(400, "malformed request: bad connection option");
            if (!connection) continue;
            connection_close_ |= iequals(option, "close");
            connection_keep_alive_ |= iequals(option, "keep-alive");
        }
    }

};

}  // namespace

void recycle(header_list&& fields) noexcept {
    if (fields.capacity() == 0) return;
    auto& pool = list_pool();
    if (pool.size() >= max_pooled_lists) return;
    size_t bytes = fields.capacity() * sizeof(header_list::value_type);  // erase() keeps the entries' room
    for (auto& [name, value] : fields) bytes += name.capacity() + value.capacity();
    if (bytes > max_pooled_bytes) return;
    pool.push_back(std::move(fields));  // within the reserved capacity: no allocation
}

namespace {

// Beast's parser for the body only, the buffer_body pattern: head_parser has read the head, so Beast is given a
// head of its own that states the same framing (framing_head), and the body goes straight into the caller's buffer.
class body_parser final : public bhttp::basic_parser<true> {
public:
    std::span<char> dest;  // where body bytes go during a read
    size_t copied = 0;
    const char* put_end = nullptr;  // end of the bytes given to the current put(): the trailer section's bound

    explicit body_parser(const limits& lim) : lim_(lim) {
        body_limit(boost::none);          // bodies stream to the app; no size limit here
        header_limit(std::uint32_t(-1));  // head_scan enforces gcorn's limits on trailers
    }

    // The request line and the one field that frame `h`'s body for Beast. PRECONDITION: h.has_body().
    static std::string framing_head(const request_head& h) {
        if (h.chunked) return "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        std::string framing = "POST / HTTP/1.1\r\nContent-Length: ";
        framing += std::to_string(*h.content_length);
        return framing += "\r\n\r\n";
    }

private:
    const limits& lim_;

    void on_request_impl(bhttp::verb, beast::string_view, beast::string_view, int, beast::error_code&) override {}

    void on_response_impl(int, beast::string_view, int, beast::error_code& ec) override {
        ec = bhttp::error::bad_method;  // never called: this is a request parser
    }

    // RFC 9110 §6.5.1: trailer fields are never merged into the head (gcorn reads and drops them). Framing and
    // routing fields there are refused: a peer that sends them is confused about framing (DESIGN §6). The framing
    // head's own field comes here too, before the header is done.
    void on_field_impl(bhttp::field, beast::string_view name, beast::string_view, beast::error_code&) override {
        if (!is_header_done()) return;
        auto f = classify({name.data(), name.size()});
        if (f == known::content_length || f == known::transfer_encoding || f == known::host)
            throw http_error(400, "forbidden trailer field");
    }

    void on_header_impl(beast::error_code&) override {}

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

    // At the last chunk Beast has the whole trailer section in hand (it starts after the last-chunk line); give
    // it the checks head_scan gives a head (bare CR/LF, controls, folding, limits: DESIGN §6) before Beast
    // parses its fields, which it does more leniently.
    void on_chunk_header_impl(std::uint64_t size, beast::string_view ext, beast::error_code&) override {
        if (size != 0) return;
        const char* trailer = ext.data() + ext.size() + 2;
        head_scan scan;
        scan.request_line_done = true;
        if (scan.scan({trailer, size_t(put_end - trailer)}, lim_) != head_scan::result::complete)
            throw http_error(400, "malformed trailer section");
    }

    size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code& ec) override {
        return on_body_impl(body, ec);
    }

    void on_finish_impl(beast::error_code&) override {}
};

}  // namespace

// One socket read asks for this much; consumed bytes are dropped from the front once they pass `compact_after`,
// so pipelined requests do not grow the buffer without end.
constexpr size_t read_size = 16384;
constexpr size_t compact_after = 65536;
// A chunk line is bounded like a field line; with limit_request_field_size off, like an unlimited request line.
constexpr size_t default_chunk_line = 8190;
constexpr size_t shortest_last_chunk = 5;  // "0\r\n\r\n"

// The bytes received on one connection. Not a std::string: growing that zero-fills every read's 16 KiB,
// and each request would malloc a fresh buffer; blocks of read_size come from a small per-thread pool.
class read_buffer {
public:
    read_buffer() = default;
    read_buffer(const read_buffer&) = delete;
    read_buffer& operator=(const read_buffer&) = delete;
    ~read_buffer() { release(); }

    char* data() { return data_.get(); }
    size_t size() const { return size_; }
    char& operator[](size_t i) { return data_[i]; }
    operator std::string_view() const { return {data_.get(), size_}; }

    // Room for `n` more bytes after size(); returns where they go.
    char* reserve_tail(size_t n) {
        if (size_ + n <= cap_) return data_.get() + size_;
        // At least a pooled block, also for a first request seeded from the head the reactor read.
        size_t cap = std::max({cap_ * 2, size_ + n, read_size});
        auto grown = cap == read_size ? take_block() : std::unique_ptr<char[]>(new char[cap]);
        if (size_) std::memcpy(grown.get(), data_.get(), size_);
        give_back();
        data_ = std::move(grown), cap_ = cap;
        return data_.get() + size_;
    }
    void commit(size_t n) { size_ += n; }
    void clear() { size_ = 0; }
    void erase_front(size_t n) {
        std::memmove(data_.get(), data_.get() + n, size_ - n);
        size_ -= n;
    }
    void release() {
        give_back();
        size_ = cap_ = 0;
    }

private:
    static std::vector<std::unique_ptr<char[]>>& pool() {
        thread_local std::vector<std::unique_ptr<char[]>> blocks;  // bounded by max_pooled
        return blocks;
    }
    static std::unique_ptr<char[]> take_block() {
        auto& p = pool();
        if (p.empty()) return std::unique_ptr<char[]>(new char[read_size]);
        auto b = std::move(p.back());
        p.pop_back();
        return b;
    }
    void give_back() {
        if (!data_) return;
        if (cap_ == read_size && pool().size() < max_pooled) pool().push_back(std::move(data_));
        data_.reset();
    }
    static constexpr size_t max_pooled = 64;

    std::unique_ptr<char[]> data_;
    size_t size_ = 0, cap_ = 0;
};

struct request_reader::impl {
    byte_stream& stream;
    limits lim;
    std::chrono::milliseconds body_timeout;
    read_buffer buf;       // received bytes; [pos, buf.size()) not yet consumed
    size_t pos = 0;
    std::optional<body_parser> p;  // the current request's body, if it has one
    std::optional<head_scan> trailer_scan;  // a trailer section Beast is still waiting for
    bool continue_pending = false;
    bool trusted = false;  // trust_forwarders
    uint64_t bytes_read = 0;

    impl(byte_stream& s, const limits& l, std::chrono::milliseconds t) : stream(s), lim(l), body_timeout(t) {}

    std::string_view pending() const { return std::string_view(buf).substr(pos); }

    // Appends what the socket has; false at end of stream.
    bool fill(deadline until) {
        if (pos > 0 && pos == buf.size()) buf.clear(), pos = 0;
        else if (pos > compact_after) buf.erase_front(pos), pos = 0;
        char* tail = buf.reserve_tail(read_size);
        size_t n = stream.read_some(std::span(tail, read_size), until);
        buf.commit(n);
        bytes_read += n;
        return n > 0;
    }

    // One step of body parsing: feed what is buffered, or read more when Beast needs more. False at EOF.
    bool step(deadline until) {
        // Once Beast has seen the last chunk it asserts (Boost 1.81 basic_parser.ipp) that it is given at least
        // the 5 bytes of the shortest ending, "0\r\n\r\n", when it resumes: fewer could not finish the body anyway.
        bool short_of_the_end = trailer_scan && pending().size() < shortest_last_chunk;
        size_t used = pending().empty() || short_of_the_end ? 0 : put(pending());
        pos += used;
        if (used > 0) trailer_scan.reset();
        if (used == 0 && !p->is_done() && p->copied == 0) {
            bound_unparsed();
            return fill(until);
        }
        return true;
    }

    // Beast consumed nothing: it wants a whole chunk line, or the last chunk's whole trailer section, before it
    // moves on. Bound what that makes us buffer, as head_scan bounds a head, so a client cannot grow it forever.
    void bound_unparsed() {
        auto rest = pending();
        if (rest.starts_with("\r\n")) rest.remove_prefix(2);  // the end of the previous chunk's data
        auto eol = rest.find("\r\n");
        if (eol == std::string_view::npos) {
            // RFC 9112 §7.1.1: limit chunk extensions as other parts of a message are limited.
            if (rest.size() > (lim.field_size ? lim.field_size : default_chunk_line))
                throw http_error(400, "chunk line too long");
            return;
        }
        // A whole chunk line left unconsumed is the last chunk: its trailer fields are still arriving.
        if (!trailer_scan) trailer_scan.emplace().request_line_done = true;
        trailer_scan->scan(rest.substr(eol + 2), lim);
    }

    // Feeds bytes to Beast; returns bytes consumed. Beast's own errors are malformed requests.
    size_t put(std::string_view bytes) {
        beast::error_code ec;
        p->put_end = bytes.data() + bytes.size();
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

void request_reader::trust_forwarders(bool trusted) { impl_->trusted = trusted; }

bool request_reader::has_buffered_bytes() const { return !impl_->pending().empty(); }

uint64_t request_reader::bytes_read() const { return impl_->bytes_read; }

void request_reader::seed(std::string_view received) {
    auto& m = *impl_;
    if (received.empty()) return;
    std::memcpy(m.buf.reserve_tail(received.size()), received.data(), received.size());
    m.buf.commit(received.size());
    m.bytes_read += received.size();
}

void request_reader::release_buffers() {
    if (has_buffered_bytes()) return;
    impl_->buf.release();
    impl_->pos = 0;
    impl_->p.reset();
}

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
        try {
            if (!m.fill(head_until)) throw stream_error(stream_error::kind::closed, "connection closed mid-head");
        } catch (const stream_error& e) {
            // RFC 9110 §15.5.9: the client started a request and did not finish it in time.
            if (e.why == stream_error::kind::timeout) throw http_error(408, "request head timed out");
            throw;
        }
    }
    m.pos += scan.skip;
    m.p.reset();
    m.trailer_scan.reset();
    size_t head_size = scan.head_end - scan.skip;
    head_parser parser(m.lim, m.trusted ? m.lim.forwarder_headers : nullptr);
    auto head = parser.parse(m.pending().substr(0, head_size), scan.request_line_end - scan.skip);
    m.pos += head_size;
    if (head.has_body()) {
        m.p.emplace(m.lim);
        auto framing = body_parser::framing_head(head);
        beast::error_code ec;
        m.p->put(boost::asio::buffer(framing), ec);
        if (ec || !m.p->is_header_done()) throw std::logic_error("Beast refused a framing head: " + ec.message());
        m.p->eager(true);  // one put() may run through several chunks
    }
    m.continue_pending = head.expect_continue && head.version == 11 && m.p.has_value();
    return head;
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
        // RFC 9112 §8: the body ended before its framing did; a server MAY answer such an incomplete message.
        if (!m.step(until)) throw http_error(400, "incomplete request body");
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
