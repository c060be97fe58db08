#include "http/head_scan.hpp"

#include "base/ascii.hpp"
#include "http/errors.hpp"

#include <array>

namespace gcorn::http {
namespace {

// Gunicorn's fallbacks for a limit configured as 0 (its MAX_REQUEST_LINE and MAX_HEADERS).
constexpr size_t max_request_line = 8190;
constexpr size_t max_fields = 32768;
// RFC 9112 §2.2 asks a server to ignore "at least one" empty line before the request line; four is
// generous for clients that send a stray CRLF after a POST body, and bounds what a client can make us skip.
constexpr size_t max_leading_empty_lines = 4;
// RFC 9110 §9.1 puts no bound on a method's length; Gunicorn refuses more than 20 characters, and so do we.
constexpr size_t max_method = 20;

// <cctype> would depend on the locale Python sets at start-up; the grammar here is ASCII.
constexpr bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// A byte class table over `extra` and the ASCII letters and digits.
constexpr std::array<bool, 256> alnum_and(std::string_view extra) {
    std::array<bool, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = is_alpha(c) || is_digit(c);
    for (char c : extra) t[(unsigned char)c] = true;
    return t;
}
constexpr auto host_chars = alnum_and("-._~%!$&'()*+,;=");

using ascii::is_tchar;
using ascii::is_token;

bool is_digits(std::string_view s) {
    for (unsigned char c : s)
        if (!is_digit(c)) return false;
    return true;
}

[[noreturn]] void bad(const char* why) { throw http_error(400, why); }

// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool is_scheme(std::string_view s) {
    if (s.empty() || !is_alpha(s.front())) return false;
    for (unsigned char c : s)
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
    return true;
}

// RFC 9112 §3.2.3: authority-form = uri-host ":" port, and only CONNECT uses it.
bool is_authority_form(std::string_view target) {
    auto colon = target.rfind(':');
    return colon != std::string_view::npos && colon > 0 && colon + 1 < target.size() && is_host_port(target);
}

void check_target(std::string_view method, std::string_view target) {
    if (target.empty()) bad("empty request target");
    if (target.front() == '/') return;  // origin-form (RFC 9112 §3.2.1)
    if (target == "*") {
        // asterisk-form (RFC 9112 §3.2.4)
        if (method != "OPTIONS") bad("asterisk-form is only for OPTIONS");
        return;
    }
    auto scheme_end = target.find("://");
    if (scheme_end != std::string_view::npos) {  // absolute-form (RFC 9112 §3.2.2)
        if (!is_scheme(target.substr(0, scheme_end))) bad("bad scheme in request target");
        return;
    }
    if (method == "CONNECT" && is_authority_form(target)) return;
    bad("request target is not in a form its method allows");
}

}  // namespace

bool is_host_port(std::string_view v) {
    // RFC 3986 §3.2.2: reg-name and IPv4 are unreserved / pct-encoded / sub-delims; an IP-literal is bracketed.
    auto is_host_char = [](unsigned char c) { return host_chars[c]; };
    std::string_view port;
    if (!v.empty() && v.front() == '[') {
        auto close = v.find(']');
        if (close == std::string_view::npos) return false;
        for (unsigned char c : v.substr(1, close - 1))
            if (!is_host_char(c) && c != ':') return false;
        auto rest = v.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') return false;
        port = rest.empty() ? rest : rest.substr(1);
    } else {
        auto colon = v.find(':');
        for (unsigned char c : v.substr(0, colon))
            if (!is_host_char(c)) return false;
        if (colon != std::string_view::npos) port = v.substr(colon + 1);
    }
    return is_digits(port);  // RFC 3986 §3.2.3: port = *DIGIT
}

void check_request_line(std::string_view line, const limits& lim) {
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        bad("request line is not METHOD SP TARGET SP VERSION");
    auto method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1), version = line.substr(sp2 + 1);
    // RFC 9110 §9.1: methods are case-sensitive tokens; the registered ones are upper-case, and a lower-case
    // "get" is refused rather than guessed at (Gunicorn does the same), as is one over 20 characters, unless
    // permit_unconventional_http_method (then any token).
    if (method.empty() || (method.size() > max_method && !lim.permit_unconventional_method)) bad("bad method");
    for (unsigned char c : method)
        if (!is_tchar(c) || (c >= 'a' && c <= 'z' && !lim.permit_unconventional_method))
            bad("method is not an upper-case token");
    // RFC 9112 §3.2: a request-target has no whitespace. Bytes 0x80-0xFF are not URI characters either, but
    // curl sends a typed UTF-8 path raw and Gunicorn and nginx serve it: served, with RAW_URI keeping them.
    for (unsigned char c : target)
        if (c == '\t') bad("bad character in request target");
    check_target(method, target);
    // RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !is_digit(version[5]) || version[6] != '.' ||
        !is_digit(version[7]))
        bad("bad HTTP version");
    // RFC 9110 §2.5: a higher minor version of a major version we implement is served as the highest we do
    // (HTTP/1.2 as HTTP/1.1, as Gunicorn and nginx do); any other major version is refused with 505, unless
    // permit_unconventional_http_version (HTTP/0.9 is then served as 1.0, HTTP/2.0 as 1.1, SERVER_PROTOCOL saying
    // what the client sent, as Gunicorn).
    if (version[5] != '1' && !lim.permit_unconventional_version) throw http_error(505, "HTTP version not supported");
}

void head_scan::end_line(std::string_view line, const limits& lim) {
    if (!request_line_done) {
        check_request_line(line, lim);
        request_line_done = true;
        return;
    }
    // RFC 9112 §2.2 and §5.2: whitespace at the start of a field line is either obsolete line folding or
    // whitespace between the start-line and the first field; both are refused.
    // Gunicorn's permit_obsolete_folding lets a continuation through (the reader joins it with one SP, as Gunicorn
    // does); whitespace before the first field is still refused.
    if (line.front() == ' ' || line.front() == '\t') {
        if (!lim.permit_obsolete_folding || fields == 0) bad("obsolete line folding or leading whitespace");
        return;
    }
    // RFC 9112 §5.1: field-name ":" OWS field-value OWS, the name a token. No whitespace between the name and its
    // colon (a smuggling vector), unless strip_header_spaces: then the reader takes the name without it.
    auto colon = line.find(':');
    if (colon == std::string_view::npos) bad("malformed request: field line without a colon");
    auto name = line.substr(0, colon);
    if (!name.empty() && (name.back() == ' ' || name.back() == '\t')) {
        if (!lim.strip_header_spaces) bad("malformed request: whitespace before a field's colon");
        while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    }
    if (name.empty()) bad("malformed request: empty field name");
    if (!is_token(name)) bad("malformed request: field name is not a token");
    // As Gunicorn: 0 means the maximum, and a larger setting is clamped to it.
    if (++fields > (lim.fields && lim.fields < max_fields ? lim.fields : max_fields))
        throw http_error(431, "too many header fields");
}

head_scan::result head_scan::scan(std::string_view buf, const limits& lim) {
    size_t line_limit = lim.request_line && lim.request_line < max_request_line ? lim.request_line : max_request_line;
    // Ignore empty lines before the request line (RFC 9112 §2.2), but not forever.
    while (!request_line_done && buf.size() >= skip + 2 && buf.substr(skip, 2) == "\r\n") {
        skip += 2;
        if (skip > 2 * max_leading_empty_lines) bad("too many empty lines before the request");
    }
    if (line_start < skip) line_start = next = skip;
    for (size_t i = next; i < buf.size(); ++i) {
        // The ordinary bytes up to the next CR (or byte to refuse), eight at a time.
        i = ascii::find_control(buf, i);
        // Limits apply while the line is still arriving, so an endless line is cut off early. The request line's
        // limit excludes its CRLF; a field line's includes it, as Gunicorn counts them.
        size_t length = i - line_start;  // an empty line (the head's end) is not a field: no limit applies
        if (!request_line_done && length > line_limit) throw http_error(414, "request line too long");
        if (request_line_done && length && lim.field_size && length + 2 > lim.field_size)
            throw http_error(431, "header field too long");
        if (i == buf.size()) break;
        unsigned char c = buf[i];
        if (c == '\n') bad("bare LF in head");
        if (c != '\r') bad("control character in head");
        if (i + 1 == buf.size()) {  // the LF has not arrived yet: look at this CR again next time
            next = i;
            return result::need_more;
        }
        if (buf[i + 1] != '\n') bad("bare CR in head");
        auto line = buf.substr(line_start, i - line_start);
        bool request_line = !request_line_done;
        line_start = next = i + 2;
        if (request_line) request_line_end = i;
        if (!request_line && line.empty()) {
            head_end = line_start;
            return result::complete;
        }
        end_line(line, lim);
        ++i;  // past the LF
    }
    next = buf.size();
    return result::need_more;
}

}  // namespace gcorn::http
