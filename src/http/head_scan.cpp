#include "http/head_scan.hpp"

#include "http/errors.hpp"

namespace gcorn::http {
namespace {

// RFC 9110 §5.6.2 tchar.
bool is_tchar(unsigned char c) {
    static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           extra.find(char(c)) != std::string_view::npos;
}

// Everything below 0x20 but HTAB, and DEL: never valid in a head line (NUL, bare CR/LF, ...).
bool is_forbidden_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

[[noreturn]] void bad(const char* why) { throw http_error(400, why); }

void check_target(std::string_view method, std::string_view target) {
    if (target.empty()) bad("empty request target");
    if (target.front() == '/') return;  // origin-form
    if (target == "*") {
        if (method != "OPTIONS") bad("asterisk-form is only for OPTIONS");
        return;
    }
    auto scheme_end = target.find("://");
    if (scheme_end != std::string_view::npos && scheme_end > 0) {  // absolute-form
        for (char c : target.substr(0, scheme_end))
            if (!std::isalnum((unsigned char)c) && c != '+' && c != '-' && c != '.') bad("bad scheme in target");
        return;
    }
    if (method == "CONNECT" && target.find('/') == std::string_view::npos) return;  // authority-form
    bad("request target is not in a form its method allows");
}

}  // namespace

void check_request_line(std::string_view line) {
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        bad("request line is not METHOD SP TARGET SP VERSION");
    auto method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1), version = line.substr(sp2 + 1);
    if (method.empty() || method.size() > 20) bad("bad method");
    for (unsigned char c : method)
        if (!is_tchar(c) || (c >= 'a' && c <= 'z')) bad("method is not an upper-case token");
    for (unsigned char c : target)
        if (c == '\t' || c >= 0x80) bad("bad character in request target");
    check_target(method, target);
    if (version == "HTTP/1.1" || version == "HTTP/1.0") return;
    if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && std::isdigit((unsigned char)version[5]) &&
        version[6] == '.' && std::isdigit((unsigned char)version[7]))
        throw http_error(505, "HTTP version not supported");
    bad("bad HTTP version");
}

head_scan::result head_scan::scan(std::string_view buf, const limits& lim) {
    size_t line_limit = lim.request_line ? lim.request_line : 8190;
    // Ignore empty lines before the request line (RFC 9112 §2.2), but not forever.
    while (!request_line_done && buf.size() >= skip + 2 && buf.substr(skip, 2) == "\r\n") {
        skip += 2;
        if (skip > 8) bad("too many empty lines before the request");
    }
    if (line_start < skip) line_start = skip;
    for (size_t i = line_start; i < buf.size(); ++i) {
        unsigned char c = buf[i];
        if (c == '\n') bad("bare LF in head");
        if (c != '\r') {
            if (is_forbidden_control(c)) bad("control character in head");
            // Limits apply while the line is still arriving, so an endless line is cut off early.
            if (!request_line_done && i - line_start >= line_limit) throw http_error(414, "request line too long");
            if (request_line_done && lim.field_size && i - line_start >= lim.field_size)
                throw http_error(431, "header field too long");
            continue;
        }
        if (i + 1 == buf.size()) return result::need_more;  // the LF has not arrived yet
        if (buf[i + 1] != '\n') bad("bare CR in head");
        auto line = buf.substr(line_start, i - line_start);
        line_start = i + 2;
        if (!request_line_done) {
            check_request_line(line);
            request_line_done = true;
        } else if (line.empty()) {
            head_end = line_start;
            return result::complete;
        } else {
            if (line.front() == ' ' || line.front() == '\t') bad("obsolete line folding or leading whitespace");
            if (++fields > lim.fields && lim.fields) throw http_error(431, "too many header fields");
        }
        ++i;  // past the LF
    }
    return result::need_more;
}

}  // namespace gcorn::http
