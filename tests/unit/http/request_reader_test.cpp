#include "http/request_reader.hpp"

#include <map>

#include <gtest/gtest.h>

#include "corpus.hpp"
#include "http/errors.hpp"
#include "http/response_writer.hpp"
#include "memory_stream.hpp"

namespace gcorn::http {
namespace {

using testing::corpus_case;
using testing::memory_stream;
using testing::gunicorn_limits;
constexpr auto forever = std::chrono::hours(1);

std::optional<request_head> next_head(request_reader& r) {
    return r.read_head(clock::now() + forever, clock::now() + forever);
}

std::string read_body(request_reader& r) {
    std::string out;
    char buf[7];  // small, so chunks and Content-Length bodies span several reads
    for (size_t n; (n = r.read(buf)) > 0;) out.append(buf, n);
    return out;
}

// The status a whole exchange ends in: 0 if the request and its body were read and nothing followed.
int refusal(std::string raw, limits lim = gunicorn_limits) {
    memory_stream s;
    s.input = {std::move(raw)};
    request_reader r(s, lim, std::chrono::seconds(1));
    try {
        if (next_head(r)) read_body(r);
        return 0;
    } catch (const http_error& e) {
        return e.status;
    }
}

TEST(request_reader, pipelined_requests_with_bodies) {
    memory_stream s;
    s.input = {"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: a\r\n\r\n"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    auto h1 = next_head(r);
    ASSERT_TRUE(h1);
    EXPECT_EQ(h1->target, "/a");
    EXPECT_EQ(read_body(r), "hello");
    EXPECT_TRUE(r.has_buffered_bytes());  // the second request is already here: no wait on the socket
    auto h2 = next_head(r);
    ASSERT_TRUE(h2);
    EXPECT_EQ(h2->target, "/b");
    EXPECT_FALSE(next_head(r));
}

TEST(request_reader, chunked_body_with_trailers) {
    memory_stream s;
    s.input = {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhel",
               "lo\r\n3;x=y\r\n, w\r\n0\r\nX-T: 1\r\n\r\n"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    auto h = next_head(r);
    ASSERT_TRUE(h && h->chunked);
    EXPECT_EQ(read_body(r), "hello, w");
    EXPECT_TRUE(r.body_complete());
}

TEST(request_reader, content_length_with_transfer_encoding_is_400) {
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

// permit_obsolete_folding: each continuation's trimmed text joins the value after one SP (an empty first line
// adds none), and the joined value goes through the field rules like any other (here, the body's framing).
TEST(request_reader, folded_values_are_joined_and_then_checked) {
    auto lim = gunicorn_limits;
    lim.permit_obsolete_folding = true;
    memory_stream s;
    s.input = {"POST / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n  two \r\n\tthree\r\nX-B:\r\n b\r\n \r\n"
               "Content-Length:\r\n 3\r\n\r\nabc"};
    request_reader r(s, lim, std::chrono::seconds(1));
    auto h = next_head(r);
    ASSERT_TRUE(h);
    header_list want{{"Host", "a"}, {"X-A", "one two three"}, {"X-B", "b"}, {"Content-Length", "3"}};
    EXPECT_EQ(h->headers, want);
    EXPECT_EQ(h->content_length, 3u);
    EXPECT_EQ(read_body(r), "abc");
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n 2\r\n\r\n12", lim), 400);  // "1 2"
}

// strip_header_spaces: "Name \t: value" is the field Name, with the rules a field of that name has.
TEST(request_reader, spaces_before_a_colon_are_stripped_when_asked) {
    auto lim = gunicorn_limits;
    lim.strip_header_spaces = true;
    memory_stream s;
    s.input = {"POST / HTTP/1.1\r\nHost : a\r\nContent-Length \t: 2\r\n\r\nok"};
    request_reader r(s, lim, std::chrono::seconds(1));
    auto h = next_head(r);
    ASSERT_TRUE(h);
    header_list want{{"Host", "a"}, {"Content-Length", "2"}};
    EXPECT_EQ(h->headers, want);
    EXPECT_EQ(read_body(r), "ok");
    EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost : a\r\nHost: b\r\n\r\n", lim), 400);  // still two Hosts
}

// A request without a body reads as empty and leaves what follows it for the next request, whatever it looks like.
TEST(request_reader, a_request_without_a_body_reads_empty) {
    memory_stream s;
    s.input = {"GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    for (auto target : {"/a", "/b"}) {
        auto h = next_head(r);
        ASSERT_TRUE(h);
        EXPECT_EQ(h->target, target);
        EXPECT_TRUE(r.body_complete());
        EXPECT_EQ(read_body(r), "");
        EXPECT_TRUE(r.discard_body(0, clock::now() + forever));
    }
    EXPECT_FALSE(next_head(r));
}

// Content-Length with Transfer-Encoding is refused as a smuggling attempt (400) in either order, before the
// coding itself is looked at (an unknown one would be 501 alone).
TEST(request_reader, both_framings_are_400_before_the_coding_is_judged) {
    std::string head = "POST / HTTP/1.1\r\nHost: a\r\n", te = "Transfer-Encoding: foo, chunked\r\n";
    EXPECT_EQ(refusal(head + "Content-Length: 3\r\n" + te + "\r\n"), 400);
    EXPECT_EQ(refusal(head + te + "Content-Length: 3\r\n\r\n"), 400);
    EXPECT_EQ(refusal(head + te + "\r\n"), 501);
}

// RFC 9110 §7.6.1: Connection (and Proxy-Connection) is a list of tokens; empty elements are allowed.
TEST(request_reader, connection_options_are_tokens) {
    for (auto v : {"a b", "k\xe9", "close;x", "\"close\""}) {
        EXPECT_EQ(refusal(std::string("GET / HTTP/1.1\r\nHost: a\r\nConnection: ") + v + "\r\n\r\n"), 400) << v;
        EXPECT_EQ(refusal(std::string("GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: ") + v + "\r\n\r\n"), 400) << v;
    }
    memory_stream s;
    s.input = {"GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: close\r\nConnection: ,, Close ,\r\n\r\n"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    auto h = next_head(r);
    ASSERT_TRUE(h);
    EXPECT_FALSE(h->keep_alive);
    s.input = {"GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: close\r\n\r\n"};
    request_reader r2(s, gunicorn_limits, std::chrono::seconds(1));
    h = next_head(r2);
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->keep_alive);  // Proxy-Connection is checked, not obeyed
}

TEST(request_reader, expect_continue_sent_on_first_read) {
    memory_stream s;
    s.input = {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", "ok"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    ASSERT_TRUE(next_head(r));
    EXPECT_EQ(s.output, "");
    EXPECT_EQ(read_body(r), "ok");
    EXPECT_EQ(s.output, "HTTP/1.1 100 Continue\r\n\r\n");
}

TEST(request_reader, expect_continue_not_sent_when_the_body_is_skipped) {
    // RFC 9110 §10.1.1: a server that never reads the body must not invite it; the connection then closes.
    memory_stream s;
    s.input = {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    ASSERT_TRUE(next_head(r));
    EXPECT_FALSE(r.discard_body(1024, clock::now() + forever));
    EXPECT_EQ(s.output, "");
}

// --- keep-alive and pipelining (RFC 9112 §9.3): what the client asks for, then what the response says

struct exchange {
    request_head head;
    std::string response;
    bool keep_alive;
};

// Reads one request and answers it with a 2-byte body, as serve() does with keep-alive allowed.
exchange answer(std::string raw, header_list app_headers = {{"Content-Length", "2"}}) {
    memory_stream s;
    s.input = {std::move(raw)};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    auto head = next_head(r);
    if (!head) throw std::runtime_error("no request");
    response_writer w(s, *head, true, std::chrono::seconds(1));
    w.start("200 OK", std::move(app_headers));
    w.write("ok");
    w.finish();
    return {*head, s.output, w.keep_alive()};
}

TEST(keep_alive, http10_closes_by_default) {
    auto x = answer("GET / HTTP/1.0\r\n\r\n");
    EXPECT_FALSE(x.head.keep_alive);
    EXPECT_FALSE(x.keep_alive);
    EXPECT_NE(x.response.find("\r\nConnection: close\r\n"), std::string::npos);
}

TEST(keep_alive, http10_keep_alive_is_honoured_and_answered) {
    auto x = answer("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    EXPECT_TRUE(x.head.keep_alive);
    EXPECT_TRUE(x.keep_alive);
    // A 1.0 client only keeps the connection if the response says so (RFC 9112 §C.2.2).
    EXPECT_NE(x.response.find("\r\nConnection: keep-alive\r\n"), std::string::npos);
}

TEST(keep_alive, http10_keep_alive_needs_a_length) {
    // Without Content-Length a 1.0 body ends at close: the connection cannot be kept (RFC 9112 §6.3 (8)).
    auto x = answer("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", {});
    EXPECT_TRUE(x.head.keep_alive);
    // `answer` writes "ok" with no announced length; a list of bytes would have set a length hint instead.
    EXPECT_FALSE(x.keep_alive);
    EXPECT_NE(x.response.find("\r\nConnection: close\r\n"), std::string::npos);
}

TEST(keep_alive, http11_persists_by_default) {
    auto x = answer("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_TRUE(x.head.keep_alive);
    EXPECT_TRUE(x.keep_alive);
    EXPECT_EQ(x.response.find("Connection:"), std::string::npos);  // 1.1 persists unless told otherwise
}

TEST(keep_alive, http11_connection_close) {
    auto x = answer("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    EXPECT_FALSE(x.head.keep_alive);
    EXPECT_FALSE(x.keep_alive);
    EXPECT_NE(x.response.find("\r\nConnection: close\r\n"), std::string::npos);
}

TEST(keep_alive, close_option_wins_in_a_list) {
    EXPECT_FALSE(answer("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n").head.keep_alive);
    EXPECT_FALSE(answer("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n").head.keep_alive);
}

TEST(keep_alive, app_connection_close_ends_it) {
    auto x = answer("GET / HTTP/1.1\r\nHost: a\r\n\r\n", {{"Content-Length", "2"}, {"Connection", "close"}});
    EXPECT_FALSE(x.keep_alive);
    EXPECT_NE(x.response.find("\r\nConnection: close\r\n"), std::string::npos);
}

TEST(keep_alive, sync_worker_never_keeps_alive) {
    memory_stream s;
    request_head h;
    h.method = "GET", h.target = "/", h.version = 11, h.keep_alive = true;
    response_writer w(s, h, false, std::chrono::seconds(1));  // keepalive_allowed = false: the sync worker
    w.start("200 OK", {{"Content-Length", "0"}});
    w.finish();
    EXPECT_FALSE(w.keep_alive());
    EXPECT_NE(s.output.find("\r\nConnection: close\r\n"), std::string::npos);
}

TEST(keep_alive, compression_before_chunked_forbids_the_next_request) {
    // DESIGN §6: the body is passed through undecoded, so nothing after it on this connection is trusted.
    auto x = answer("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
                    "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_TRUE(x.head.must_close);
    EXPECT_FALSE(x.head.keep_alive);
    EXPECT_FALSE(x.keep_alive);
}

TEST(pipelining, unread_body_is_skipped_before_the_next_request) {
    memory_stream s;
    s.input = {"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
               "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    ASSERT_TRUE(next_head(r));
    EXPECT_FALSE(r.body_complete());
    EXPECT_TRUE(r.discard_body(1024, clock::now() + forever));  // the app never read it
    auto h2 = next_head(r);
    ASSERT_TRUE(h2);
    EXPECT_EQ(h2->target, "/b");
}

TEST(pipelining, too_large_an_unread_body_ends_the_connection) {
    memory_stream s;
    s.input = {"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET /b HTTP/1.1\r\nHost: a\r\n\r\n"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    ASSERT_TRUE(next_head(r));
    EXPECT_FALSE(r.discard_body(4, clock::now() + forever));
}

TEST(pipelining, requests_split_anywhere_are_read_in_order) {
    std::string both = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
                       "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
    for (size_t cut = 1; cut < both.size(); ++cut) {
        memory_stream s;
        s.input = {both.substr(0, cut), both.substr(cut)};
        request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
        std::string seen;
        while (auto h = next_head(r)) seen += h->target + read_body(r);
        EXPECT_EQ(seen, "/1/2xyz/3") << "split at " << cut;
    }
}

// --- bounds on what a body's framing can make the reader buffer

TEST(request_reader, endless_chunk_line_is_cut_off) {
    // RFC 9112 §7.1.1: chunk extensions are limited like the rest of a message (here: a field line's limit).
    std::string raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;" + std::string(20000, 'x');
    EXPECT_EQ(refusal(raw), 400);
}

TEST(request_reader, trailer_limits_apply_before_the_section_ends) {
    // The trailer section never ends, but a third field breaks limit_request_fields = 2 as soon as it arrives.
    std::string raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n";
    EXPECT_EQ(refusal(raw, {4094, 2, 8190}), 431);
}

TEST(request_reader, trailer_limits_allow_what_the_head_allows) {
    std::string raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\n\r\n";
    EXPECT_EQ(refusal(raw, {4094, 3, 8190}), 0);
}

TEST(request_reader, zero_limits_mean_gunicorns_maximums) {
    // limit_request_fields = 0 is Gunicorn's 32768, not "unlimited".
    std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 32768; ++i) many += "X: 1\r\n";
    EXPECT_EQ(refusal(many + "\r\n", {0, 0, 0}), 431);
}

TEST(request_reader, peer_closing_mid_head_is_a_stream_error) {
    // Nothing to answer: the client left before saying what it wanted (Gunicorn is silent here too).
    memory_stream s;
    s.input = {"GET / HTTP/1.1\r\nHost: a\r\n"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    EXPECT_THROW(next_head(r), stream_error);
}

TEST(request_reader, peer_closing_before_a_request_is_a_quiet_end) {
    memory_stream s;
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    EXPECT_FALSE(next_head(r));
}

// A client that stops sending: its reads time out once the script is spent.
class stalled_stream final : public byte_stream {
public:
    memory_stream script;
    size_t read_some(std::span<char> into, deadline until) override {
        if (script.input.empty()) throw stream_error(stream_error::kind::timeout, "timed out");
        return script.read_some(into, until);
    }
    void write_all(std::span<const std::string_view> pieces, deadline until) override { script.write_all(pieces, until); }
    size_t send_file(int, off_t, size_t, deadline) override { return 0; }
    void linger(deadline) override {}
};

TEST(request_reader, head_not_whole_by_its_deadline_is_408) {
    stalled_stream s;
    s.script.input = {"GET / HTTP/1.1\r\nHost: a\r\n"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    try {
        next_head(r);
        FAIL() << "no error";
    } catch (const http_error& e) {
        EXPECT_EQ(e.status, 408);
    }
}

TEST(request_reader, no_byte_by_the_deadline_is_a_quiet_end) {
    stalled_stream s;  // a connection that never sent a byte gets no answer (as nginx)
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    EXPECT_FALSE(next_head(r));
}

TEST(request_reader, seeded_bytes_come_before_the_stream) {
    // The driver collected the head (and the start of the body) off the socket before serve() ran.
    memory_stream s;
    s.input = {"lo"};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    std::string seeded = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel";
    r.seed(seeded);
    EXPECT_TRUE(r.has_buffered_bytes());
    auto h = next_head(r);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->target, "/a");
    EXPECT_EQ(read_body(r), "hello");
    EXPECT_EQ(r.bytes_read(), seeded.size() + 2);
}

// --- the raw-request corpus (tests/data/requests, DESIGN §7)

// How wsgi/ names a field in environ: HTTP_ + upper case with '-' as '_', repeats joined with ','
// (CONTENT_TYPE and CONTENT_LENGTH without the prefix).
std::map<std::string, std::string> environ_fields(const header_list& headers) {
    std::map<std::string, std::string> out;
    for (auto& [name, value] : headers) {
        std::string key;
        for (char c : name) key += c == '-' ? '_' : char(std::toupper((unsigned char)c));
        if (key != "CONTENT_TYPE" && key != "CONTENT_LENGTH") key = "HTTP_" + key;
        auto [it, fresh] = out.emplace(key, value);
        if (!fresh) it->second += "," + value;
    }
    return out;
}

std::map<std::string, std::string> expected_environ_fields(const boost::json::object& e) {
    std::map<std::string, std::string> out;
    for (auto& [key, value] : e.at("headers").as_object())
        out["HTTP_" + std::string(key)] = testing::latin1(value.as_string());
    for (auto [json_key, env_key] : {std::pair{"content_type", "CONTENT_TYPE"}, {"content_length", "CONTENT_LENGTH"}})
        if (auto* v = e.if_contains(json_key)) out[env_key] = testing::latin1(v->as_string());
    return out;
}

struct parse_result {
    std::optional<request_head> head;
    std::string body;
    bool another_request = false;  // read_head found more after the body
    int status = 0;                // http_error's, or 0
    std::string error;
};

parse_result parse(const std::string& raw, bool byte_at_a_time) {
    memory_stream s;
    if (byte_at_a_time)
        for (char c : raw) s.input.emplace_back(1, c);
    else
        s.input = {raw};
    request_reader r(s, gunicorn_limits, std::chrono::seconds(1));
    parse_result out;
    try {
        out.head = next_head(r);
        if (out.head) {
            out.body = read_body(r);
            out.another_request = next_head(r).has_value();
        }
    } catch (const http_error& e) {
        out.status = e.status;
        out.error = e.what();
    }
    return out;
}

std::string case_name(const ::testing::TestParamInfo<corpus_case>& info) { return info.param.name; }

class valid_request : public ::testing::TestWithParam<corpus_case> {
protected:
    void check(bool byte_at_a_time) {
        auto& e = GetParam().expected;
        auto got = parse(GetParam().raw, byte_at_a_time);
        ASSERT_EQ(got.status, 0) << got.error;
        ASSERT_TRUE(got.head);
        EXPECT_EQ(got.head->method, testing::latin1(e.at("method").as_string()));
        EXPECT_EQ(got.head->target, testing::latin1(e.at("uri").as_string()));
        EXPECT_EQ(got.head->protocol(), testing::latin1(e.at("version").as_string()));
        EXPECT_EQ(environ_fields(got.head->headers), expected_environ_fields(e));
        EXPECT_EQ(got.body, testing::latin1(e.at("body").as_string()));
        EXPECT_EQ(got.head->keep_alive, e.at("keep_alive").as_bool());
        EXPECT_EQ(got.head->must_close, e.contains("must_close") && e.at("must_close").as_bool());
        EXPECT_FALSE(got.another_request);
    }
};

TEST_P(valid_request, parses_to_its_expectation) { check(false); }
TEST_P(valid_request, parses_to_its_expectation_one_byte_at_a_time) { check(true); }

INSTANTIATE_TEST_SUITE_P(corpus, valid_request, ::testing::ValuesIn(testing::load_corpus("valid")), case_name);

class invalid_request : public ::testing::TestWithParam<corpus_case> {
protected:
    void check(bool byte_at_a_time) {
        auto& e = GetParam().expected;
        auto got = parse(GetParam().raw, byte_at_a_time);
        EXPECT_EQ(got.status, e.at("status").as_int64());
        auto reason = testing::latin1(e.at("error").as_string());
        EXPECT_NE(got.error.find(reason), std::string::npos)
            << "refused for \"" << got.error << "\", not \"" << reason << '"';
    }
};

TEST_P(invalid_request, is_refused_with_its_status) { check(false); }
TEST_P(invalid_request, is_refused_with_its_status_one_byte_at_a_time) { check(true); }

INSTANTIATE_TEST_SUITE_P(corpus, invalid_request, ::testing::ValuesIn(testing::load_corpus("invalid")), case_name);

TEST(corpus, is_there) {
    // An empty or misplaced corpus would instantiate no cases and pass silently.
    EXPECT_GE(testing::load_corpus("valid").size(), 30u);
    EXPECT_GE(testing::load_corpus("invalid").size(), 90u);
}

}  // namespace
}  // namespace gcorn::http
