// libFuzzer target for the HTTP/1.1 request reader: bytes from a client go through request_reader (head_scan,
// the head's split and gcorn's field rules, Beast's body parser) as a keep-alive connection would, heads and
// bodies until error or EOF.
// No sockets, no Python; built with clang, ASan and UBSan (tests/fuzz/meson.build), run by scripts/fuzz.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/errors.hpp"
#include "http/request_reader.hpp"
#include "http/response_writer.hpp"

namespace {

namespace http = gcorn::http;

// Hands the input out in reads of varying size, so split points (a CRLF cut in two, a chunk line across reads)
// are explored without spending input bytes on choosing them. Writes (100 Continue, responses) are dropped.
class fuzz_stream final : public http::byte_stream {
public:
    fuzz_stream(const uint8_t* data, size_t size) : rest_(reinterpret_cast<const char*>(data), size), seed_(size) {}

    size_t read_some(std::span<char> into, http::deadline) override {
        seed_ = seed_ * 1103515245 + 12345;  // a fixed LCG: the same input always splits the same way
        size_t n = std::min({into.size(), rest_.size(), size_t(1 + (seed_ >> 16) % 97)});
        rest_.copy(into.data(), n);
        rest_.remove_prefix(n);
        return n;
    }
    void write_all(std::span<const std::string_view>, http::deadline) override {}
    size_t send_file(int, off_t, size_t, http::deadline) override { return 0; }
    void linger(http::deadline) override {}

private:
    std::string_view rest_;
    uint64_t seed_;
};

// What a parsed head promises the layers above (DESIGN §6); a broken promise is a crash the fuzzer reports.
void check(const http::request_head& h) {
    auto fail_if = [](bool broken) {
        if (broken) std::abort();
    };
    fail_if(h.version != 10 && h.version != 11);
    fail_if(h.method.empty() || h.target.empty());
    for (char c : h.method) fail_if(c >= 'a' && c <= 'z');
    fail_if(h.content_length && (h.chunked || h.must_close));  // never two framings
    fail_if(h.chunked && h.version == 10);
    fail_if(h.must_close && h.keep_alive);
    for (auto& [name, value] : h.headers) {
        fail_if(name.empty() || name.find('_') != std::string::npos);
        for (char c : name + value) fail_if(c == '\r' || c == '\n' || c == '\0');
        fail_if(!value.empty() && (value.front() == ' ' || value.back() == ' '));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_stream stream(data, size);
    // Small limits reach the 414/431 paths with short inputs; the logic is the same at the defaults.
    http::limits lim{256, 16, 256};
    http::request_reader reader(stream, lim, std::chrono::seconds(1));
    auto far = http::clock::now() + std::chrono::hours(1);
    try {
        for (int i = 0; i < 8; ++i) {
            auto head = reader.read_head(far, far);
            if (!head) break;
            check(*head);
            // Alternate between an app that reads the body and one that leaves it for discard_body.
            if (i % 2 == 0) {
                char buf[61];
                while (reader.read(buf) > 0) {
                }
            } else if (!reader.discard_body(1 << 16, far)) {
                break;
            }
            http::response_writer writer(stream, *head, true, std::chrono::seconds(1));
            writer.start("200 OK", {{"Content-Length", "2"}});
            writer.write("ok");
            writer.finish();
            if (!writer.keep_alive()) break;
        }
    } catch (const http::http_error& e) {
        if (e.status < 400 || e.status > 505) std::abort();
    } catch (const http::stream_error&) {
    }
    return 0;
}
