#include "wsgi/app.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "../http/memory_stream.hpp"
#include "config/settings.hpp"
#include "http/request_reader.hpp"
#include "http/response_writer.hpp"
#include "py/interpreter.hpp"

// PEP 3333 over an in-memory stream: the environ an app sees, start_response's rules, errors turned into 500s.
// One embedded interpreter; the test apps live in a module written to a temporary directory.
namespace gcorn::wsgi {
namespace {

using http::testing::gunicorn_limits;
using http::testing::memory_stream;

constexpr const char* test_apps = R"py(
import json

def environ_app(environ, start_response):
    body = environ["wsgi.input"].read()
    keys = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "REMOTE_ADDR",
            "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT", "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_X_TAG", "RAW_URI",
            "wsgi.url_scheme", "wsgi.multithread"]
    seen = {k: environ.get(k) for k in keys}
    seen["body"] = body.decode()
    seen["version"] = list(environ["wsgi.version"])
    data = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]

def failing_app(environ, start_response):
    raise RuntimeError("the app broke")

def split_header_app(environ, start_response):
    start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: x=1")])
    return [b"never"]

def write_app(environ, start_response):
    write = start_response("200 OK", [("Content-Length", "11")])
    write(b"hello ")
    return [b"world"]

def exc_info_keyword_app(environ, start_response):
    import sys
    start_response("200 OK", [("X-First", "1")])
    try:
        raise KeyError("x")
    except KeyError:
        start_response("503 Later", [("X-Second", "2")], exc_info=sys.exc_info())
    return [b"replaced"]

def call_forms_app(environ, start_response):
    # The interpreter calls start_response with a vector of arguments; a call through a tuple and a dict (the
    # type's __call__, f(*args, **kwargs)) and a wrong count must work the same way.
    try:
        start_response("200 OK")
    except TypeError:
        pass
    else:
        raise AssertionError("one argument was taken")
    type(start_response).__call__(start_response, *("202 Accepted", [("X-Form", "tuple")]), **{"exc_info": None})
    return [b"ok"]

def error_after_head_app(environ, start_response):
    start_response("200 OK", [("Content-Length", "100")])
    yield b"part"
    raise ValueError("mid-body")
)py";

class wsgi_test : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = std::filesystem::temp_directory_path() / ("gcorn-wsgi-test-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
        std::ofstream(dir_ / "unit_apps.py") << test_apps;
        interp_ = new py::interpreter({dir_.string(), py::gcorn_python_dir()});
    }
    static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }  // the interpreter lives until exit

    // Serves `raw` with `app_name` from unit_apps; returns what was written to the client.
    std::string serve(const std::string& app_name, std::string raw) {
        config::settings s;
        s.wsgi_app = "unit_apps:" + app_name;
        application app(s);
        memory_stream stream;
        stream.input.push_back(std::move(raw));
        http::request_reader reader(stream, gunicorn_limits, std::chrono::seconds(1));
        auto now = http::clock::now();
        auto head = reader.read_head(now + std::chrono::seconds(1), now + std::chrono::seconds(1));
        EXPECT_TRUE(head.has_value());
        http::response_writer writer(stream, *head, true, std::chrono::seconds(1));
        connection_info conn;
        conn.remote_addr = "192.0.2.7";
        conn.remote_port = 40000;
        conn.server_name = "127.0.0.1";
        conn.server_port = "8000";
        last_ = app.handle(conn, *head, reader, writer);
        return stream.output;
    }

    static std::string body_of(const std::string& response) { return response.substr(response.find("\r\n\r\n") + 4); }

    outcome last_;
    static inline std::filesystem::path dir_;
    static inline py::interpreter* interp_ = nullptr;
};

TEST_F(wsgi_test, environ_follows_pep_3333) {
    auto out = serve("environ_app",
                     "POST /caf%C3%A9/x?q=1&r=2 HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
                     "X-Tag: t1\r\n\r\nbody");
    ASSERT_TRUE(out.starts_with("HTTP/1.1 200 OK\r\n")) << out;
    auto body = body_of(out);
    EXPECT_NE(body.find(R"("REQUEST_METHOD": "POST")"), std::string::npos) << body;
    // PATH_INFO is decoded and carried as latin-1 code points of the UTF-8 bytes (PEP 3333 "native strings").
    EXPECT_NE(body.find(R"("PATH_INFO": "/caf\u00c3\u00a9/x")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("RAW_URI": "/caf%C3%A9/x?q=1&r=2")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("QUERY_STRING": "q=1&r=2")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("SERVER_PROTOCOL": "HTTP/1.1")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("REMOTE_ADDR": "192.0.2.7")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("CONTENT_TYPE": "text/plain")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("CONTENT_LENGTH": "4")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("HTTP_X_TAG": "t1")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("body": "body")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("version": [1, 0])"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("wsgi.url_scheme": "http")"), std::string::npos) << body;
    EXPECT_FALSE(last_.aborted);
}

TEST_F(wsgi_test, an_app_exception_is_a_500_and_not_an_abort) {
    auto out = serve("failing_app", "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_TRUE(out.starts_with("HTTP/1.1 500 Internal Server Error\r\n")) << out;
    EXPECT_FALSE(last_.aborted);
}

TEST_F(wsgi_test, a_header_that_would_split_the_response_is_refused) {
    auto out = serve("split_header_app", "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_TRUE(out.starts_with("HTTP/1.1 500")) << out;
    EXPECT_EQ(out.find("Set-Cookie"), std::string::npos) << out;
}

TEST_F(wsgi_test, the_write_callable_comes_before_the_iterable) {
    auto out = serve("write_app", "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(body_of(out), "hello world") << out;
}

TEST_F(wsgi_test, an_error_after_the_head_cuts_the_response_short) {
    auto out = serve("error_after_head_app", "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_TRUE(out.starts_with("HTTP/1.1 200 OK\r\n")) << out;
    EXPECT_EQ(body_of(out), "part");
    EXPECT_TRUE(last_.aborted);  // the connection must close: the client cannot tell where the body ends
}

// PEP 3333: exc_info replaces a head not yet sent, given by keyword as well as by position.
TEST_F(wsgi_test, exc_info_by_keyword_replaces_the_head) {
    auto out = serve("exc_info_keyword_app", "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_TRUE(out.starts_with("HTTP/1.1 503 Later\r\n")) << out;
    EXPECT_NE(out.find("X-Second: 2"), std::string::npos) << out;
    EXPECT_EQ(out.find("X-First"), std::string::npos) << out;
    EXPECT_EQ(body_of(out), "replaced");
}

TEST_F(wsgi_test, start_response_takes_every_call_form) {
    auto out = serve("call_forms_app", "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_TRUE(out.starts_with("HTTP/1.1 202 Accepted\r\n")) << out;
    EXPECT_NE(out.find("X-Form: tuple"), std::string::npos) << out;
    EXPECT_EQ(body_of(out), "ok");
}

}  // namespace
}  // namespace gcorn::wsgi
