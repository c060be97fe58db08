// An in-memory byte_stream for unit tests: reads come from a script of chunks, writes are collected.
#pragma once
#include <deque>
#include <string>

#include "http/byte_stream.hpp"
#include "http/head_scan.hpp"

namespace gcorn::http::testing {

// The settings table's defaults (limit_request_line, limit_request_fields, limit_request_field_size), as a test
// states what it expects.
inline constexpr limits gunicorn_limits{4094, 100, 8190};

class memory_stream final : public byte_stream {
public:
    std::deque<std::string> input;  // each entry is returned by one read_some (split if larger)
    std::string output;
    bool lingered = false;
    size_t yields = 0;           // times the writer let other connections run
    size_t file_chunk = 1 << 20;  // what one send_file "sends" (the file is not read)

    size_t read_some(std::span<char> into, deadline) override {
        if (input.empty()) return 0;
        auto& front = input.front();
        size_t n = std::min(into.size(), front.size());
        front.copy(into.data(), n);
        front.erase(0, n);
        if (front.empty()) input.pop_front();
        return n;
    }
    void write_all(std::span<const std::string_view> pieces, deadline) override {
        for (auto p : pieces) output.append(p);
    }
    size_t send_file(int, off_t, size_t count, deadline) override { return std::min(count, file_chunk); }
    void linger(deadline) override { lingered = true; }
    void yield() override { ++yields; }
};

}  // namespace gcorn::http::testing
