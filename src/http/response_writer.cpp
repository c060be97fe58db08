#include "http/response_writer.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "base/ascii.hpp"
#include "http/errors.hpp"

namespace gcorn::http {
namespace {

using ascii::iequals;
using ascii::is_token;

// RFC 9110 §5.5: no control character but HTAB in a field value (CR/LF would split the response).
bool is_field_value(std::string_view v) { return ascii::find_control(v) == v.size(); }

// The fields the writer treats apart, told by length first: one comparison per field, not one per name.
// PRECONDITION: `name` is a token.
enum class field { other, content_length, date, server, connection, hop_by_hop };
field classify(std::string_view name) {
    auto is = [&](std::string_view lower) { return ascii::token_iequals(name, lower); };
    switch (name.size()) {
    case 2: return is("te") ? field::hop_by_hop : field::other;
    case 4: return is("date") ? field::date : field::other;
    case 6: return is("server") ? field::server : field::other;
    case 7: return is("trailer") || is("upgrade") ? field::hop_by_hop : field::other;
    case 10: return is("connection") ? field::connection : is("keep-alive") ? field::hop_by_hop : field::other;
    case 14: return is("content-length") ? field::content_length : field::other;
    case 17: return is("transfer-encoding") ? field::hop_by_hop : field::other;
    case 18: return is("proxy-authenticate") ? field::hop_by_hop : field::other;
    case 19: return is("proxy-authorization") ? field::hop_by_hop : field::other;
    default: return field::other;
    }
}

// The Date header changes once a second; format it once a second (RFC 9110 §5.6.7 IMF-fixdate).
std::string_view http_date() {
    thread_local std::time_t cached_at = 0;
    thread_local char buf[40];
    std::time_t now = std::time(nullptr);
    if (now != cached_at) {
        std::tm tm{};
        ::gmtime_r(&now, &tm);
        std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_at = now;
    }
    return buf;
}

// RFC 9110 §8.6: Content-Length = 1*DIGIT, and it has to fit the counter that enforces it.
std::optional<uint64_t> parse_length(std::string_view v) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || v.front() < '0' || v.front() > '9' || ec != std::errc() || end != v.data() + v.size())
        return std::nullopt;
    return n;
}

char hex_digit(unsigned v) { return "0123456789abcdef"[v & 15]; }

std::string hex(uint64_t n) {
    std::string s;
    do s.insert(s.begin(), hex_digit(unsigned(n))), n >>= 4;
    while (n);
    return s;
}

}  // namespace

std::string_view check_status(std::string_view status) {
    auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    if (status.size() < 3 || !std::all_of(status.begin(), status.begin() + 3, is_digit))
        return "status must start with a 3-digit code";
    if (status.size() > 3 && status[3] != ' ') return "status code must be followed by a space";
    // RFC 9110 §15: status codes are 100 to 599; clients treat anything else as a broken response.
    if (status[0] < '1' || status[0] > '5') return "status code out of range";
    for (unsigned char c : status)
        if (c < 0x20 || c == 0x7f) return "control character in status";
    return {};
}

// Why a field would corrupt the response, or empty; what kind of field it is, and the Content-Length it carries.
std::string_view check_field(std::string_view name, std::string_view value, field& kind, uint64_t& length) {
    if (!is_token(name)) return "header name is not a token";
    if (!is_field_value(value)) return "control character in header value";
    kind = classify(name);
    // RFC 9110 §8.6: the response is framed by this value, so "abc" or "5, 6" would desynchronise the client.
    if (kind == field::content_length) {
        auto n = parse_length(value);
        if (!n) return "Content-Length is not a number";
        length = *n;
    }
    return {};
}

std::string_view check_header(std::string_view name, std::string_view value) {
    field kind;
    uint64_t length = 0;
    return check_field(name, value, kind, length);
}

void head_buffer::grow(size_t need) {
    size_t cap = std::max(cap_ * 2, need);
    auto bigger = std::make_unique<char[]>(cap);
    std::memcpy(bigger.get(), data_, size_);
    heap_ = std::move(bigger);
    data_ = heap_.get(), cap_ = cap;
}

response_writer::response_writer(byte_stream& stream, const request_head& request, bool keepalive_allowed,
                                 std::chrono::milliseconds write_timeout)
    : stream_(stream), request_(request), write_timeout_(write_timeout),
      keep_alive_(keepalive_allowed && request.keep_alive) {}

void response_writer::start(std::string_view status, const header_list& headers) {
    if (!check_status(status).empty()) throw std::invalid_argument("invalid status " + std::string(status));
    begin(status);
    for (auto& [name, value] : headers)
        if (!add_header(name, value).empty()) throw std::invalid_argument("invalid header " + name);
    end_headers();
}

void response_writer::begin(std::string_view status) {
    status_ = status;
    started_ = false;
    bodiless_status_ = status_code() < 200 || status_code() == 204 || status_code() == 304;  // RFC 9110 §6.4.1
    app_close_ = has_date_ = has_server_ = false;
    app_length_.reset();
    dropped_.clear();
    headers_.reset();
    head_.clear();
    head_.append(request_.protocol(), " ", status, "\r\n");
    fields_at_ = head_.size();
}

// Checked and appended as it comes; hop-by-hop fields are ours to set (RFC 9110 §7.6.1).
std::string_view response_writer::add_header(std::string_view name, std::string_view value) {
    field kind;
    uint64_t length = 0;
    if (auto why = check_field(name, value, kind, length); !why.empty()) return why;
    switch (kind) {
    case field::connection:
        if (iequals(value, "close")) app_close_ = true;
        [[fallthrough]];
    case field::hop_by_hop:
        dropped_.emplace_back(name, value);
        return {};
    case field::content_length:
        // One Content-Length frames the response (RFC 9112 §6.3); a repeat is dropped, never sent twice, and a
        // bodiless status sends none.
        if (app_length_ || bodiless_status_) {
            if (!app_length_) app_length_ = length;
            dropped_.emplace_back(name, value);
            return {};
        }
        app_length_ = length;
        break;
    case field::date: has_date_ = true; break;
    case field::server: has_server_ = true; break;
    case field::other: break;
    }
    head_.append(name, ": ", value, "\r\n");
    return {};
}

const header_list& response_writer::headers() const {
    if (headers_) return *headers_;
    headers_.emplace();
    // Field lines as add_header() wrote them: a token name (no ':'), ": ", a value without CR or LF.
    size_t end = head_sent_ ? fields_end_ : head_.size();
    auto fields = head_.view().substr(std::min(fields_at_, end), end - std::min(fields_at_, end));
    while (!fields.empty()) {
        auto line = fields.substr(0, fields.find("\r\n"));
        auto colon = line.find(": ");
        headers_->emplace_back(line.substr(0, colon), line.substr(colon + 2));
        fields.remove_prefix(std::min(fields.size(), line.size() + 2));
    }
    headers_->insert(headers_->end(), dropped_.begin(), dropped_.end());
    return *headers_;
}

void response_writer::send(std::span<const std::string_view> pieces) {
    stream_.write_all(pieces, coarse_now() + write_timeout_);
}

void response_writer::commit_head() {
    if (claim_ && claim_->exchange(true))
        throw stream_error(stream_error::kind::cancelled, "the request deadline answered first");
    no_body_ = bodiless_status_ || request_.method == "HEAD";
    if ((stopping_ && stopping_->load(std::memory_order_relaxed)) || app_close_) keep_alive_ = false;
    fields_end_ = head_.size();
    append_framing(bodiless_status_);
    if (!has_date_) head_.append("Date: ", http_date(), "\r\n");
    if (!has_server_) head_.append("Server: gcorn\r\n");
    if (!keep_alive_) head_.append("Connection: close\r\n");
    else if (request_.version == 10) head_.append("Connection: keep-alive\r\n");
    head_.append("\r\n");
    head_sent_ = head_unsent_ = true;
}

// Without the app's Content-Length: wsgi.file_wrapper's length, chunked on HTTP/1.1, or close on HTTP/1.0.
void response_writer::append_framing(bool bodiless_status) {
    if (!app_length_ && !bodiless_status) {
        if (length_hint_) {
            app_length_ = length_hint_;
            char digits[24];
            auto end = std::to_chars(digits, digits + sizeof digits, *length_hint_).ptr;
            head_.append("Content-Length: ", std::string_view(digits, size_t(end - digits)), "\r\n");
        } else if (request_.method == "HEAD") {
            // nothing follows a HEAD response, so the connection stays usable without framing
        } else if (request_.version == 11) {
            chunked_ = true;
            head_.append("Transfer-Encoding: chunked\r\n");
        } else {
            keep_alive_ = false;  // HTTP/1.0: the body ends when the connection does
        }
    }
}

void response_writer::flush(std::string_view data, std::string_view trailer, bool final) {
    // The unsent head, the chunk framing and the data leave in one gathered write.
    std::string_view pieces[5];
    size_t n = 0;
    std::string size;
    // A small body that fits behind the head in its buffer goes with it as one piece: one copy of a few bytes
    // costs less than the kernel's import of a second iovec (and send(2) takes the place of sendmsg(2)).
    if (head_unsent_ && !chunked_ && !data.empty() && trailer.empty() && data.size() <= head_.room()) {
        head_.append(data);
        data = {};
    }
    if (head_unsent_) pieces[n++] = head_.view();
    if (!data.empty()) {
        if (chunked_) pieces[n++] = size = hex(data.size()) + "\r\n";
        pieces[n++] = data;
        if (chunked_) pieces[n++] = "\r\n";
    }
    if (!trailer.empty()) pieces[n++] = trailer;
    // The response's end on a connection that stays open may leave with the round's others (byte_stream).
    bool last = final && keep_alive_ && !chunked_ && trailer.empty() && status_code() >= 200 &&
                (no_body_ || (app_length_ && body_bytes_ == *app_length_));
    if (n && last) stream_.write_last(std::span(pieces, n), coarse_now() + write_timeout_);
    else if (n) send(std::span(pieces, n));
    head_unsent_ = false;  // head_ stays: headers() reads the fields back from it
}

// A client that reads as fast as we send never makes a write wait, so a big body would hold the async worker's
// hub for the whole transfer (1 GiB took ~0.6 s): every few MiB the stream lets other connections run.
void response_writer::sent_body(uint64_t n) {
    constexpr uint64_t yield_every = 4u << 20;
    if ((unyielded_ += n) < yield_every) return;
    unyielded_ = 0;
    stream_.yield();
}

uint64_t response_writer::clamp_to_length(uint64_t n) {
    // Never send more than the announced Content-Length: the excess would be read as the next response.
    if (app_length_ && body_bytes_ + n > *app_length_) n = *app_length_ - std::min(*app_length_, body_bytes_);
    body_bytes_ += n;
    return n;
}

void response_writer::write(std::string_view chunk) {
    if (chunk.empty()) return;
    if (!head_sent_) commit_head();
    if (no_body_) return flush({}, {});
    auto body = chunk.substr(0, clamp_to_length(chunk.size()));
    flush(body, {});
    sent_body(body.size());
}

void response_writer::write_file(int fd, off_t offset, uint64_t count) {
    if (!head_sent_) commit_head();
    count = no_body_ ? 0 : clamp_to_length(count);
    if (count == 0) return flush({}, {});
    std::string size = chunked_ ? hex(count) + "\r\n" : "";
    flush({}, size, false);  // the file follows
    while (count > 0) {
        size_t n = stream_.send_file(fd, offset, count, coarse_now() + write_timeout_);
        if (n == 0) throw stream_error(stream_error::kind::closed, "file shorter than announced");
        offset += off_t(n);
        count -= n;
        sent_body(n);
    }
    if (chunked_) flush({}, "\r\n");
}

void response_writer::finish() {
    if (!head_sent_) {
        if (!length_hint_ && request_.method != "HEAD") length_hint_ = 0;  // nothing was written: empty body
        commit_head();
    }
    flush({}, chunked_ ? "0\r\n\r\n" : "");
    // A body shorter than its Content-Length leaves the client waiting: only closing ends it.
    if (!no_body_ && app_length_ && body_bytes_ < *app_length_) keep_alive_ = false;
}

bool response_writer::send_early_hints(const header_list& headers) {
    if (request_.version < 11 || head_sent_) return false;
    std::string hints = "HTTP/1.1 103 Early Hints\r\n";
    for (auto& [name, value] : headers) hints.append(name).append(": ").append(value).append("\r\n");
    hints.append("\r\n");
    std::string_view piece[] = {hints};
    send(piece);
    return true;
}

std::string canned_response(int status, std::string_view body) {
    std::string r = "HTTP/1.1 ";
    r.append(status_line(status)).append("\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ");
    r.append(std::to_string(body.size())).append("\r\n\r\n").append(body);
    return r;
}

}  // namespace gcorn::http
