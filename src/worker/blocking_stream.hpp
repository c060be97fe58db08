// A byte_stream over a non-blocking socket that waits in poll(2) with the GIL released: the sync worker's
// way of blocking (DESIGN §2). Deadlines become stream_error::timeout.
#pragma once
#include "http/byte_stream.hpp"

namespace gcorn::worker {

class blocking_stream final : public http::byte_stream {
public:
    explicit blocking_stream(int fd) : fd_(fd) {}
    size_t read_some(std::span<char> into, http::deadline until) override;
    void write_all(std::span<const std::string_view> pieces, http::deadline until) override;
    size_t send_file(int fd, off_t offset, size_t count, http::deadline until) override;
    void linger(http::deadline until) override;

private:
    void wait(short events, http::deadline until);
    int fd_;
};

}  // namespace gcorn::worker
