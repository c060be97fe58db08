// Frames one response on a byte_stream: status line, headers (plus Date and Server), and a body sent with
// the app's Content-Length, chunked (HTTP/1.1) or close-delimited (HTTP/1.0). No Python.
#pragma once
#include <cstdint>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/byte_stream.hpp"
#include "http/request.hpp"

namespace gcorn::http {

// Why the app's status or header would corrupt the response (CR/LF/NUL: response splitting), or empty.
std::string_view check_status(std::string_view status);
std::string_view check_header(std::string_view name, std::string_view value);

// Bytes of a response head: inline up to a size that holds a usual head (no malloc per request), on the heap
// past it. append() takes every piece of a line at once: one bounds check, then the copies.
class head_buffer {
public:
    head_buffer() = default;
    head_buffer(const head_buffer&) = delete;
    head_buffer& operator=(const head_buffer&) = delete;

    template <class... Pieces>
    void append(const Pieces&... pieces) {
        size_t n = (std::string_view(pieces).size() + ...);
        if (size_ + n > cap_) grow(size_ + n);
        ((put(std::string_view(pieces))), ...);
    }
    void clear() { size_ = 0; }
    size_t size() const { return size_; }
    size_t room() const { return cap_ - size_; }  // bytes append() takes without growing
    std::string_view view() const { return {data_, size_}; }

private:
    void put(std::string_view piece) {
        std::memcpy(data_ + size_, piece.data(), piece.size());
        size_ += piece.size();
    }
    void grow(size_t need);

    char inline_[320];
    char* data_ = inline_;
    size_t size_ = 0, cap_ = sizeof inline_;
    std::unique_ptr<char[]> heap_;
};

class response_writer {
public:
    // `keepalive_allowed`: false for the sync worker (Gunicorn closes after every request there).
    response_writer(byte_stream& stream, const request_head& request, bool keepalive_allowed,
                    std::chrono::milliseconds write_timeout);

    // A head of gcorn's own (a 503, a 500): `status` and `headers` checked, std::invalid_argument if one is
    // refused. May be called again until the head is sent.
    void start(std::string_view status, const header_list& headers);
    // The app's head (start_response) in one pass: begin() with its checked status, add_header() each field as it
    // comes (checked, classified and framed at once, no list kept), then end_headers(). Until end_headers() the
    // writer is not started(): a refused field leaves it so, and the app has to call start_response again. May be
    // called again until the head is sent (exc_info), replacing what was there.
    void begin(std::string_view status);
    std::string_view add_header(std::string_view name, std::string_view value);  // why it is refused, or empty
    void end_headers() { started_ = true; }
    // The server knows the whole body's size (a list of bytes): frame with Content-Length, not chunked.
    void set_length_hint(uint64_t total) { length_hint_ = total; }

    void write(std::string_view chunk);
    // Sends `count` bytes of a regular file with sendfile(2); false if nothing could be sent that way.
    void write_file(int fd, off_t offset, uint64_t count);
    void finish();
    // RFC 8297: a 103 (Early Hints) interim response carrying `headers` (checked by the caller), sent at once.
    // False, sending nothing, to an HTTP/1.0 client (no interim responses, RFC 9110 §15.2) or once the final
    // head is out (a 1xx after it would be read as the next response).
    bool send_early_hints(const header_list& headers);

    bool started() const { return started_; }
    bool head_sent() const { return head_sent_; }
    bool keep_alive() const { return keep_alive_; }
    uint64_t body_bytes() const { return body_bytes_; }
    const std::string& status() const { return status_; }
    int status_code() const {  // of the status start() was given (checked: three digits first); 0 before
        return status_.size() < 3 ? 0 : (status_[0] - '0') * 100 + (status_[1] - '0') * 10 + (status_[2] - '0');
    }
    // The app's fields as Gunicorn's resp.headers has them: those it sent, then those it gave that were ours to
    // set (hop-by-hop, a repeated or bodiless Content-Length). Read back from the head on first use (access log).
    const header_list& headers() const;
    // The app broke the protocol (e.g. wrote past its Content-Length then failed): close after this one.
    void force_close() { keep_alive_ = false; }
    // A server-wide "stopping" flag: if it is set by the time the head is committed, say Connection: close.
    void close_when(const std::atomic<bool>* stopping) { stopping_ = stopping; }
    // The request deadline may answer 504 from another thread: whoever sets `claim` first sends the head. If the
    // deadline took it, the app's head is refused with stream_error (the connection is already closing).
    void claim_with(std::atomic<bool>* claim) { claim_ = claim; }
    // The deadline answered in the app's place.
    bool preempted() const { return claim_ && !head_sent_ && claim_->load(); }

private:
    void commit_head();
    void append_framing(bool bodiless_status);
    // `final`: nothing of the response follows these bytes but what the writer counted (write_file's head: a file).
    void flush(std::string_view data, std::string_view trailer, bool final = true);
    void send(std::span<const std::string_view> pieces);
    uint64_t clamp_to_length(uint64_t n);
    void sent_body(uint64_t n);

    byte_stream& stream_;
    const request_head& request_;
    std::chrono::milliseconds write_timeout_;
    std::string status_;
    head_buffer head_;  // the status line and the app's fields as they come, then (committed) the rest of the head
    size_t fields_at_ = 0, fields_end_ = 0;  // where the app's fields are in head_
    header_list dropped_;                    // the app's fields not sent as given
    mutable std::optional<header_list> headers_;
    const std::atomic<bool>* stopping_ = nullptr;  // committed but not yet sent
    std::atomic<bool>* claim_ = nullptr;
    std::optional<uint64_t> app_length_, length_hint_;
    bool started_ = false, head_sent_ = false, head_unsent_ = false, chunked_ = false, no_body_ = false, keep_alive_;
    bool bodiless_status_ = false, app_close_ = false, has_date_ = false, has_server_ = false;  // from the app's head
    uint64_t body_bytes_ = 0;
    uint64_t unyielded_ = 0;  // body bytes sent since the stream last let other connections run
};

// A complete canned response for errors gcorn generates itself ("400 Bad Request"); always closes.
std::string canned_response(int status, std::string_view body);

}  // namespace gcorn::http
